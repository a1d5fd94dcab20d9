"""What each built-in model takes and returns, and the functions that compute it.

Why this exists: the same tensors and the same functions sit behind both ways Triton serves the
built-in workloads: the model repository's Python backend on a car (``backend.py`` behind
``repository/*/1/model.py``) and the PyTriton harness that tests and the demo start
(``curbside_testbed.serve``). Keeping them here, in the worker's package, means the car's
image never needs the test tooling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from curbside_worker.workloads import minilm, seti


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One model input or output, per item (the batch dimension is implied)."""

    name: str
    dtype: type[np.generic]
    shape: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int


SPECS = {
    seti.MODEL_NAME: ModelSpec(
        name=seti.MODEL_NAME,
        inputs=(
            TensorSpec("VOLTAGES", np.int8, (-1, -1)),
            TensorSpec("MAX_DRIFT", np.int32, (1,)),
            TensorSpec("THRESHOLD", np.float32, (1,)),
        ),
        outputs=(TensorSpec("HITS", np.float32, (seti.MAX_HITS, 3)),),
        max_batch_size=16,
    ),
    minilm.MODEL_NAME: ModelSpec(
        name=minilm.MODEL_NAME,
        inputs=(TensorSpec("TEXT", np.bytes_, (1,)),),
        outputs=(TensorSpec("EMBEDDING", np.float32, (minilm.DIMENSION,)),),
        max_batch_size=64,
    ),
}
"""What each model takes and returns; ``repository/*/config.pbtxt`` must say the same."""

Arrays = dict[str, npt.NDArray[Any]]


def seti_infer(
    VOLTAGES: npt.NDArray[np.int8], MAX_DRIFT: npt.NDArray[np.int32], THRESHOLD: npt.NDArray[np.float32]
) -> Arrays:
    """A batch of spectrograms to their HITS; rows with other settings are searched separately."""
    from curbside_worker.workloads import seti_detector

    hits = np.zeros((len(VOLTAGES), seti.MAX_HITS, 3), dtype=np.float32)
    settings = np.stack([MAX_DRIFT.reshape(-1).astype(np.float64), THRESHOLD.reshape(-1)], axis=1)
    for max_drift, threshold in np.unique(settings, axis=0):
        rows = np.flatnonzero((settings[:, 0] == max_drift) & (settings[:, 1] == threshold))
        hits[rows] = seti_detector.detect(
            VOLTAGES[rows], max_drift=int(max_drift), threshold=float(threshold)
        )
    return {"HITS": hits}


def minilm_infer(model: minilm.MiniLM) -> Callable[..., Arrays]:
    def infer(TEXT: npt.NDArray[np.object_]) -> Arrays:
        texts = [bytes(row[0]).decode("utf-8") for row in TEXT]
        return {"EMBEDDING": model.embed(texts)}

    return infer


def with_torch_threads(infer: Callable[..., Arrays], threads: int | None) -> Callable[..., Arrays]:
    """``infer`` running torch with ``threads`` intra-op threads (None: torch's default).

    Set in the calling thread on every call: PyTriton calls from its own handler threads, and
    on a small shared machine two spinning OpenMP threads per model can cost more than they
    give (measured: MiniLM 2.7x slower with 2 threads than 1 on a loaded 2-core box).
    """
    if threads is None:
        return infer

    def run(**inputs: npt.NDArray[Any]) -> Arrays:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return infer(**inputs)

    return run
