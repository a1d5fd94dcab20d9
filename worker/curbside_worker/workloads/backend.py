"""The Triton Python-backend glue behind ``repository/*/1/model.py`` (the layout for real cars).

Why this exists: on a car, the pod's ``tritonserver`` loads a model repository, not PyTriton.
Each ``model.py`` there is three lines that hand their requests to ``execute`` below, so the
repository runs exactly the detector and the MiniLM that PyTriton serves in the test bed
(``specs.seti_infer`` / ``specs.minilm_infer``) and that tests check.

Triton hands ``execute`` every request the dynamic batcher gathered; each request carries its
own batch of rows. Requests whose inputs have the same per-row shapes are stacked and run as
one batch (that is what batching is for), then the outputs are cut back per request.
``pb_utils`` (``triton_python_backend_utils``) exists only inside the Triton stub, so it is a
parameter: tests pass a stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from curbside_worker.workloads import minilm, seti, specs

Infer = Callable[..., dict[str, npt.NDArray[Any]]]


class Model:
    """What a ``TritonPythonModel`` delegates to: one of the workloads, by model name."""

    def __init__(self, name: str, args: dict[str, Any], *, pb_utils: Any) -> None:
        self.pb_utils = pb_utils
        self.spec = specs.SPECS[name]
        config = json.loads(args.get("model_config", "{}") or "{}")
        configured = {entry["name"] for entry in config.get("input", [])}
        expected = {tensor.name for tensor in self.spec.inputs}
        if configured and configured != expected:
            raise ValueError(f"config.pbtxt inputs {sorted(configured)} are not {sorted(expected)}")
        self.infer: Infer = specs.seti_infer if name == seti.MODEL_NAME else self._minilm()

    @staticmethod
    def _minilm() -> Infer:
        return specs.minilm_infer(minilm.MiniLM())

    def _inputs(self, request: Any) -> dict[str, npt.NDArray[Any]]:
        arrays = {}
        for tensor in self.spec.inputs:
            array = self.pb_utils.get_input_tensor_by_name(request, tensor.name).as_numpy()
            arrays[tensor.name] = array
        return arrays

    def execute(self, requests: Sequence[Any]) -> list[Any]:
        gathered = [self._inputs(request) for request in requests]
        outputs: list[dict[str, npt.NDArray[Any]] | None] = [None] * len(requests)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, arrays in enumerate(gathered):
            key = tuple((name, array.shape[1:]) for name, array in sorted(arrays.items()))
            groups.setdefault(key, []).append(index)
        for members in groups.values():
            stacked = {
                name: np.concatenate([gathered[i][name] for i in members]) for name in gathered[members[0]]
            }
            result = self.infer(**stacked)
            start = 0
            for index in members:
                rows = len(next(iter(gathered[index].values())))
                outputs[index] = {name: value[start : start + rows] for name, value in result.items()}
                start += rows
        responses = []
        for output in outputs:
            assert output is not None
            tensors = [
                self.pb_utils.Tensor(t.name, output[t.name].astype(t.dtype)) for t in self.spec.outputs
            ]
            responses.append(self.pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
