"""The inference pod of one (job, car): ``tritonserver`` and ``curbside worker`` side by side.

Why this exists: the pod is the contract between the operator, the car and the simulator. It
is built here, purely, from the job and the car, so its name, labels, tolerations and
environment are the same whoever asks, and the table tests pin them:

- Its name is ``placement.pod_name(job, car)``: one live pod per (job, car), and a create
  after a crash that already happened answers AlreadyExists, which is success.
- It is bound by ``nodeName`` (Curbside is its own scheduler), owned by the job (garbage
  collection removes it with the job) and labelled for the operator's and simulator's watches.
- It tolerates the car taint (ordinary pods stay off cars) and, for a few seconds only, the
  ``curbside.dev/driving`` taint: the operator fences the car's attempts *before* it deletes
  the pod; the taint manager evicting it would be the backstop, not the path.
- It passes Pod Security ``restricted``: non-root, no privilege escalation, no capabilities,
  the runtime's default seccomp profile.
- The worker is configured through ``CURBSIDE_*`` variables (``curbside worker`` reads them).
  No secret is placed on the car: the worker proves who it is with a projected ServiceAccount
  token for ``DISPATCHER_AUDIENCE``, bound to this pod (and so to its node, the car), valid
  ``TOKEN_SECONDS`` and rotated by the kubelet; the dispatcher checks it with a TokenReview.
  The pod's ServiceAccount is its namespace's ``default`` and no API token is mounted.
"""

from __future__ import annotations

from typing import Any

from curbside_api import GROUP
from curbside_api.v1alpha1 import inferencejob as ij
from curbside_operator.reconcile import placement

MANAGED_BY = {"app.kubernetes.io/managed-by": "curbside"}
JOB_LABEL = f"{GROUP}/job"
CAR_LABEL = f"{GROUP}/car"
VEHICLE_TAINT_KEY = f"{GROUP}/vehicle"
DRIVING_TAINT_KEY = f"{GROUP}/driving"
TRITON_GRPC_PORT = 8001
TRITON_METRICS_PORT = 8002
WORKER_METRICS_PORT = 9465
"""The worker's Prometheus metrics, on the pod's IP (the chart's inference PodMonitor scrapes
it, and Triton's own metrics port)."""
DRIVING_TOLERATION_SECONDS = 5
DISPATCHER_AUDIENCE = "curbside-dispatcher"
"""The audience of the workers' projected tokens: the dispatcher accepts no other."""
TOKEN_SECONDS = 600
"""Lifetime of a worker's token (the API server's minimum); the kubelet renews it at 80 %."""
TOKEN_VOLUME, TOKEN_DIR = "dispatcher-token", "/var/run/secrets/curbside.dev/dispatcher"
TOKEN_MOUNT = {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}
# The worker hands its large input tensors to Triton in POSIX shared memory (the agent's
# worker/shm.py), and Triton's Python backend talks to its model process the same way: both
# containers mount one memory-backed volume at /dev/shm, so they share it whatever the
# runtime's default (often 64 MiB, per container), sized for the largest batches.
SHM_VOLUME, SHM_SIZE = "dshm", "256Mi"
SHM_MOUNT = {"name": SHM_VOLUME, "mountPath": "/dev/shm"}
TOKEN_FILE = f"{TOKEN_DIR}/token"


def labels(job: str, car: str) -> dict[str, str]:
    return {**MANAGED_BY, JOB_LABEL: job, CAR_LABEL: car, "app.kubernetes.io/name": "curbside-inference"}


def pod_body(
    job: ij.InferenceJob,
    car: str,
    *,
    owner: str,
    dispatcher_url: str,
    worker_image: str,
    batch_size: int = 8,
) -> dict[str, Any]:
    """The pod that runs ``job`` on ``car`` (a plain dict, ready to create)."""
    meta, spec = job.metadata, job.spec
    name, namespace = meta.name or "", meta.namespace or ""
    env = {
        "CURBSIDE_DISPATCHER_URL": dispatcher_url,
        "CURBSIDE_JOB_NAMESPACE": namespace,
        "CURBSIDE_JOB_NAME": name,
        "CURBSIDE_CAR": car,
        "CURBSIDE_OWNER": owner,
        "CURBSIDE_TOKEN_FILE": TOKEN_FILE,
        "CURBSIDE_TRITON_URL": f"127.0.0.1:{TRITON_GRPC_PORT}",
        "CURBSIDE_MODEL": spec.model.name,
        "CURBSIDE_BATCH_SIZE": str(batch_size),
        "CURBSIDE_METRICS_PORT": str(WORKER_METRICS_PORT),
        "CURBSIDE_METRICS_HOST": "0.0.0.0",  # the pod's network namespace: its own IP only
    }
    triton_args = ["tritonserver", "--model-control-mode=explicit", f"--load-model={spec.model.name}"]
    triton_args.append(f"--model-repository={spec.model.repository or '/models'}")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": placement.pod_name(name, car),
            "namespace": namespace,
            "labels": labels(name, car),
            "ownerReferences": [
                {
                    "apiVersion": job.api_version,
                    "kind": job.kind,
                    "name": name,
                    "uid": meta.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": car,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 10,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "tolerations": [
                {"key": VEHICLE_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
                {
                    "key": DRIVING_TAINT_KEY,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DRIVING_TOLERATION_SECONDS,
                },
            ],
            "containers": [
                {
                    "name": "tritonserver",
                    "image": spec.model.triton_image,
                    "args": triton_args,
                    "ports": [
                        {"name": "grpc", "containerPort": TRITON_GRPC_PORT},
                        {"name": "triton-metrics", "containerPort": TRITON_METRICS_PORT},
                    ],
                    "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": 8000}},
                    "volumeMounts": [dict(SHM_MOUNT)],
                    "securityContext": _restricted(),
                },
                {
                    "name": "worker",
                    "image": worker_image,
                    "args": ["worker"],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "ports": [{"name": "metrics", "containerPort": WORKER_METRICS_PORT}],
                    "volumeMounts": [dict(TOKEN_MOUNT), dict(SHM_MOUNT)],
                    "securityContext": _restricted(),
                },
            ],
            "volumes": [
                token_volume(),
                {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
            ],
        },
    }


def token_volume() -> dict[str, Any]:
    """The worker's token: projected, for the dispatcher's audience, bound to the pod, rotated."""
    token = {"audience": DISPATCHER_AUDIENCE, "expirationSeconds": TOKEN_SECONDS, "path": "token"}
    return {"name": TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": token}]}}


def _restricted() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
