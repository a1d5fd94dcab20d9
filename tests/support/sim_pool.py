"""Inference pods and a worker pool as the simulator's kubelet tests build them.

Why this exists: the simulator's worker-pool tests and its pod-token tests start from the same
inference pod (as the operator makes it, the parts the simulator reads), the same answer to
"may this car work" (``Fleet``) and the same pool on a stand-in Triton (``make_pool``).
"""

from __future__ import annotations

from typing import Any

from curbside_sim import workers
from curbside_worker.workloads import minilm
from tests.support.fake_triton import TOKEN, FakeTriton

CAR = "car-00007"


def pod(
    env: dict[str, str] | None = None, *, car: str = CAR, uid: str = "uid-1", url: str = "http://d:8080"
) -> dict[str, Any]:
    """An inference pod as the operator makes it (the parts the simulator reads)."""
    values = {
        "CURBSIDE_DISPATCHER_URL": url,
        "CURBSIDE_JOB_NAMESPACE": "demo",
        "CURBSIDE_JOB_NAME": "job",
        "CURBSIDE_CAR": car,
        "CURBSIDE_OWNER": "alice",
        "CURBSIDE_TOKEN": TOKEN,
        "CURBSIDE_TRITON_URL": "127.0.0.1:8001",
        "CURBSIDE_MODEL": minilm.MODEL_NAME,
        "CURBSIDE_BATCH_SIZE": "2",
        **(env or {}),
    }
    return {
        "metadata": {"namespace": "demo", "name": f"job-{car}", "uid": uid},
        "spec": {
            "nodeName": car,
            "containers": [
                {"name": "tritonserver", "env": [{"name": "CURBSIDE_TOKEN", "value": "not this one"}]},
                {"name": "worker", "env": [{"name": k, "value": v} for k, v in values.items() if v]},
            ],
        },
        "status": {"phase": "Running"},
    }


class Fleet:
    """What the pool asks about cars: why each cannot work (None: it can)."""

    def __init__(self) -> None:
        self.why: dict[str, str | None] = {}

    def blocked(self, car: str) -> str | None:
        return self.why.get(car)


def make_pool(fleet: Fleet, triton: FakeTriton, **extra: Any) -> tuple[workers.WorkerPool, list[str]]:
    lines: list[str] = []
    pool = workers.WorkerPool(
        cars={CAR, "car-00008"},
        blocked=fleet.blocked,
        triton_url="unused:0",
        say=lines.append,
        make_triton=lambda url, switch: triton,  # type: ignore[arg-type,return-value]
        **extra,
    )
    return pool, lines
