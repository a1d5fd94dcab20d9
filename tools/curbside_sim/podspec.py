"""What an inference pod asks of its car's kubelet: the worker's configuration and its token.

Why this module exists: the simulator plays the kubelet for Curbside's pods on simulated cars,
so it reads a pod the way the worker (``curbside-worker``) and a kubelet would, and refuses a pod it could
not run, naming the pod and the variable (``PodError``):

- ``worker_config``: the ``WorkerConfig`` that ``curbside-worker`` would build from the
  ``worker`` container's ``CURBSIDE_*`` values, with the simulator's Triton;
- ``projected_token``: the projected ServiceAccount token the worker reads from
  ``CURBSIDE_TOKEN_FILE`` (the volume mounted there, its ``serviceAccountToken`` source's
  audience and lifetime, and the pod's ServiceAccount, name and uid), which ``tokens`` requests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

from curbside_worker import runner
from curbside_worker.workloads import catalog

CONTAINER = "worker"
REQUIRED = ("DISPATCHER_URL", "JOB_NAMESPACE", "JOB_NAME", "CAR", "MODEL")
NUMBERS: dict[str, tuple[str, Callable[[str], float]]] = {  # optional: the WorkerConfig field each sets
    "BATCH_SIZE": ("batch_size", int),
    "INFLIGHT": ("inflight", int),
    "MAX_UNITS": ("max_units", int),
    "IDLE_EXIT": ("idle_exit_s", float),
    "READY_TIMEOUT": ("ready_timeout_s", float),
}


class PodError(ValueError):
    """The pod cannot be run as a worker; the message names the pod and the variable."""


def pod_name(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def worker_config(pod: Mapping[str, Any], *, triton_url: str) -> runner.WorkerConfig:
    """The ``WorkerConfig`` that ``curbside-worker`` would build inside ``pod``, with ``triton_url``."""
    where = pod_name(pod)
    spec = pod.get("spec") or {}
    found = [c for c in spec.get("containers") or [] if c.get("name") == CONTAINER]
    if not found:
        raise PodError(f"pod {where}: no container named {CONTAINER!r}")
    env = {e["name"]: str(e["value"]) for e in found[0].get("env") or [] if "value" in e}
    missing = [f"CURBSIDE_{key}" for key in REQUIRED if not env.get(f"CURBSIDE_{key}")]
    if not (env.get("CURBSIDE_TOKEN") or env.get("CURBSIDE_TOKEN_FILE")):
        missing.append("CURBSIDE_TOKEN_FILE (or CURBSIDE_TOKEN)")
    if missing:  # a valueFrom is missing too: the simulator reads plain values only
        raise PodError(f"pod {where}: container {CONTAINER!r} lacks {', '.join(missing)}")
    car = env["CURBSIDE_CAR"]
    if spec.get("nodeName") != car:
        raise PodError(
            f"pod {where}: CURBSIDE_CAR is {car!r} but the pod is bound to {spec.get('nodeName')!r}"
        )
    try:
        catalog.workload(env["CURBSIDE_MODEL"])
    except KeyError as error:
        raise PodError(f"pod {where}: CURBSIDE_MODEL: {error.args[0]}") from None
    numbers: dict[str, Any] = {}
    for key, (field, kind) in NUMBERS.items():
        text = env.get(f"CURBSIDE_{key}")
        if text:
            low = 1 if kind is int else 0
            try:
                numbers[field] = kind(text)
            except ValueError:
                numbers[field] = low - 1
            if numbers[field] < low:
                raise PodError(f"pod {where}: CURBSIDE_{key} is {text!r}, not a number >= {low}")
    return runner.WorkerConfig(
        dispatcher_url=env["CURBSIDE_DISPATCHER_URL"],
        namespace=env["CURBSIDE_JOB_NAMESPACE"],
        job=env["CURBSIDE_JOB_NAME"],
        car=car,
        owner=env.get("CURBSIDE_OWNER", ""),
        token=env.get("CURBSIDE_TOKEN", ""),  # else the file the simulator projects (``tokens``)
        triton_url=triton_url,
        model=env["CURBSIDE_MODEL"],
        **numbers,
    )


@dataclasses.dataclass(frozen=True)
class ProjectedToken:
    """The token a pod's worker container reads: for which pod, account, audience and lifetime."""

    namespace: str
    pod: str
    uid: str
    service_account: str
    audience: str
    expiration_seconds: int


def projected_token(pod: Mapping[str, Any], *, container: str = CONTAINER) -> ProjectedToken | None:
    """The projected token behind the container's ``CURBSIDE_TOKEN_FILE`` (None: no such variable)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    worker = _named(spec.get("containers"), container)
    path = str((_named(worker.get("env"), "CURBSIDE_TOKEN_FILE")).get("value") or "")
    if not path:
        return None
    file, source = PurePosixPath(path), None
    for mount in worker.get("volumeMounts") or []:
        if file.is_relative_to(mount.get("mountPath") or "/"):
            relative = str(file.relative_to(mount["mountPath"]))
            volume = _named(spec.get("volumes"), mount.get("name", ""))
            for each in (volume.get("projected") or {}).get("sources") or []:
                if (each.get("serviceAccountToken") or {}).get("path") == relative:
                    source = each["serviceAccountToken"]
    if source is None:
        where = f"pod {pod_name(pod)}: CURBSIDE_TOKEN_FILE {path}"
        raise PodError(f"{where} is not in a projected serviceAccountToken volume")
    return ProjectedToken(
        namespace=str(meta.get("namespace", "")),
        pod=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        service_account=str(spec.get("serviceAccountName") or "default"),
        audience=str(source.get("audience") or ""),
        expiration_seconds=int(source.get("expirationSeconds") or 3600),
    )


def _named(items: Any, name: str) -> Mapping[str, Any]:
    """The entry of a list of ``{"name": ...}`` objects with ``name`` (empty if none)."""
    found: Mapping[str, Any] = next((i for i in items or [] if i.get("name") == name), {})
    return found
