"""Curbside's side of the bench: InferenceJobs applied over the API, their pods seen in the audit log.

Why this exists: every scenario applies a job, waits for its pods, makes cars leave and reads
when the operator deleted and created pods. The operator creates its pods already bound
(``nodeName``), so the API server's audit record of the create is the moment of binding, in
microseconds on the server's clock: the fairest timestamp there is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from curbside_bench import kit

NAMESPACE = "bench-curbside"
OPERATOR_USER = "curbside-operator"
KEPT = ("pods", "vehiclenodes")


def job_body(
    name: str, *, units: int, max_cars: int, output: Path, unit_timeout: int = 120
) -> dict[str, Any]:
    return {
        "apiVersion": "curbside.dev/v1alpha1",
        "kind": "InferenceJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "seti-spike-search"},
            "input": {"generated": {"units": units, "parameters": {"channels": "64", "timeSteps": "16"}}},
            "output": {"uri": (output / name).as_uri()},
            "placement": {"maxCars": max_cars},
            "unitTimeoutSeconds": unit_timeout,
        },
    }


def apply(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post(kit.IJ.format(ns=NAMESPACE), json=body)
    if r.status_code != 201:
        raise kit.BenchError(f"applying job {body['metadata']['name']}: HTTP {r.status_code}: {r.text[:300]}")
    return dict(r.json())


def get(api: httpx.Client, name: str) -> dict[str, Any]:
    r = api.get(f"{kit.IJ.format(ns=NAMESPACE)}/{name}")
    r.raise_for_status()
    return dict(r.json())


def pods(api: httpx.Client, job: str) -> dict[str, str]:
    """The job's live pods: name → car."""
    return {
        p["metadata"]["name"]: p["spec"]["nodeName"]
        for p in kit.live_pods(api, NAMESPACE, f"curbside.dev/job={job}")
    }


def delete(api: httpx.Client, name: str, timeout: float, interval: float = 1.0) -> None:
    """Delete a job and wait until it and its pods are gone (the operator's finalizer);
    ``interval`` between looks (each lists the job's pods: thousands at 10,000 cars)."""
    delete_all(api, (name,), timeout, interval)


def delete_all(api: httpx.Client, names: Sequence[str], timeout: float, interval: float = 1.0) -> None:
    """``delete`` for several jobs at once: every delete is sent before the first wait."""
    for name in names:
        api.delete(f"{kit.IJ.format(ns=NAMESPACE)}/{name}")
    for name in names:
        _wait_gone(api, name, timeout, interval)


def _wait_gone(api: httpx.Client, name: str, timeout: float, interval: float) -> None:
    url = f"{kit.IJ.format(ns=NAMESPACE)}/{name}"
    kit.until(f"job {name} deleted", lambda: api.get(url).status_code == 404, timeout, 1.0)
    kit.until(
        f"pods of {name} gone",
        lambda: not kit.live_pods(api, NAMESPACE, f"curbside.dev/job={name}"),
        timeout,
        interval,
    )


@dataclass(frozen=True)
class PodWrite:
    """The operator creating or deleting one of its pods, on the server's clock."""

    at: float
    verb: str  # "create" or "delete"
    name: str


def pod_writes(events: list[dict[str, Any]], job: str) -> list[PodWrite]:
    """The operator's pod creates and deletes for ``job`` (pod names start with the job's)."""
    out = []
    for e in events:
        user, verb, resource, namespace, name = kit.audit_key(e)
        if user != OPERATOR_USER or resource != "pods" or namespace != NAMESPACE:
            continue
        code = int((e.get("responseStatus") or {}).get("code", 0))
        if verb in ("create", "delete") and code in (200, 201) and name.startswith(f"{job}-"):
            out.append(PodWrite(kit.audit_time(e), verb, name))
    return sorted(out, key=lambda w: w.at)


def status_patch_at(events: list[dict[str, Any]], car: str, *, since: float) -> float | None:
    """When our own status patch for ``car`` (sent after ``since``) reached the server."""
    for e in events:
        user, verb, resource, _, name = kit.audit_key(e)
        ours = resource == "vehiclenodes/status" and user != OPERATOR_USER and verb == "patch"
        if ours and name == car and (at := kit.audit_time(e)) >= since:
            return at
    return None


class Audit:
    """Keeps every audit event read since it was made, so several waits can look back."""

    def __init__(self, path: Path) -> None:
        self.tail = kit.AuditTail(path)
        self.events: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        """Every pod and VehicleNode write so far (Lease renewals are not kept: too many)."""
        self.events += [e for e in self.tail.read() if (e.get("objectRef") or {}).get("resource") in KEPT]
        return self.events

    def wait(self, what: str, predicate: Any, timeout: float) -> Any:
        return kit.until(what, lambda: predicate(self.poll()), timeout, 0.1)

    def settle(self, seconds: float = 1.5) -> list[dict[str, Any]]:
        """Read what the API server's batched audit writer still held (it flushes every 1 s)."""
        time.sleep(seconds)
        return self.poll()
