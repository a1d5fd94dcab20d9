"""A stand-in Triton for worker tests, and the generated input of a unit.

Why this exists: the worker's tests and the simulator's worker-pool tests run the real worker
loop without a Triton server: ``FakeTriton`` embeds each sentence as 384 copies of its length
and can hold a batch at a gate, so a worker can be caught mid-unit. ``TOKEN`` is the fixed
dispatcher token those tests share; ``generated`` is a unit's generated input.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from curbside_worker.triton import Aborted, Arrays
from curbside_worker.workloads import minilm

TOKEN = "s3cret"


class FakeTriton:
    """Embeds a sentence as 384 copies of its length; waits at ``gate`` (if given) before each batch."""

    def __init__(self, *, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.batches = 0
        self.inside = threading.Event()

    def wait_ready(self, models: Sequence[str], **_: Any) -> None:
        assert list(models) == [minilm.MODEL_NAME]

    def infer_batches(
        self,
        model: str,
        batches: Iterable[Arrays],
        *,
        outputs: Sequence[str],
        abort: Callable[[], bool],
        **_: Any,
    ) -> Arrays:
        rows = []
        for batch in batches:
            self.inside.set()
            while self.gate is not None and not self.gate.wait(0.02):
                if abort():
                    raise Aborted("stopped at the gate")
            if abort():
                raise Aborted("stopped")
            self.batches += 1
            rows += [np.full(minilm.DIMENSION, len(row[0]), dtype=np.float32) for row in batch["TEXT"]]
        return {"EMBEDDING": np.stack(rows)}

    def close(self) -> None:
        pass


def generated(unit: int, count: int = 3) -> dict[str, Any]:
    return {"seed": 7, "unit": unit, "itemsPerUnit": count, "parameters": {}}
