"""The real-car model repository says what PyTriton serves, and its Python backend runs the same code."""

from __future__ import annotations

import json
import os
import re
import sysconfig
from typing import Any

import numpy as np
import pytest

from curbside_testbed import serve
from curbside_worker.workloads import backend, catalog, seti, specs

TRITON_TYPES = {
    np.int8: "TYPE_INT8",
    np.int32: "TYPE_INT32",
    np.float32: "TYPE_FP32",
    np.bytes_: "TYPE_STRING",
}


def config(name: str) -> str:
    return (serve.repository_path() / name / "config.pbtxt").read_text()


def tensors(text: str, section: str) -> list[tuple[str, str, tuple[int, ...]]]:
    block = re.search(rf"^{section} \[(.*?)^\]", text, re.S | re.M)
    assert block is not None, section
    entries = re.findall(r'name: "(\w+)" data_type: (\w+) dims: \[([^\]]*)\]', block.group(1))
    return [(n, t, tuple(int(d) for d in dims.split(","))) for n, t, dims in entries]


@pytest.mark.parametrize("name", sorted(specs.SPECS))
def test_config_pbtxt_matches_the_pytriton_bindings(name: str) -> None:
    spec, text = specs.SPECS[name], config(name)
    assert f'name: "{name}"' in text
    assert 'backend: "python"' in text
    assert f"max_batch_size: {spec.max_batch_size}" in text
    assert "dynamic_batching" in text
    assert tensors(text, "input") == [(t.name, TRITON_TYPES[t.dtype], t.shape) for t in spec.inputs]
    assert tensors(text, "output") == [(t.name, TRITON_TYPES[t.dtype], t.shape) for t in spec.outputs]
    assert (serve.repository_path() / name / "1" / "model.py").is_file()
    assert catalog.workload(name).outputs == tuple(t.name for t in spec.outputs)


class FakePbUtils:
    """The parts of triton_python_backend_utils that backend.Model uses."""

    class Tensor:
        def __init__(self, name: str, array: np.ndarray[Any, Any]) -> None:
            self.name, self.array = name, array

        def as_numpy(self) -> np.ndarray[Any, Any]:
            return self.array

    class InferenceResponse:
        def __init__(self, output_tensors: list[Any]) -> None:
            self.outputs = {t.name: t.array for t in output_tensors}

    @staticmethod
    def get_input_tensor_by_name(request: dict[str, Any], name: str) -> Any:
        return FakePbUtils.Tensor(name, request[name])


def test_the_python_backend_batches_requests_and_answers_each_with_its_rows() -> None:
    args = {
        "model_config": json.dumps({"input": [{"name": t.name} for t in specs.SPECS[seti.MODEL_NAME].inputs]})
    }
    model = backend.Model(seti.MODEL_NAME, args, pb_utils=FakePbUtils)
    small = {"channels": "256", "timeSteps": "32", "maxDrift": "4", "signalsPerUnit": "2"}
    other = {"channels": "128", "timeSteps": "32", "maxDrift": "4", "signalsPerUnit": "1"}
    seti_workload = catalog.workload(seti.MODEL_NAME)
    units = [
        seti_workload.prepare({"seed": 1, "unit": 0, "itemsPerUnit": 2, "parameters": small}),
        seti_workload.prepare({"seed": 1, "unit": 1, "itemsPerUnit": 1, "parameters": other}),
        seti_workload.prepare({"seed": 1, "unit": 2, "itemsPerUnit": 3, "parameters": small}),
    ]
    responses = model.execute([dict(unit.arrays) for unit in units])
    assert len(responses) == 3
    for unit, response in zip(units, responses, strict=True):
        direct = specs.seti_infer(**unit.arrays)["HITS"]
        np.testing.assert_array_equal(response.outputs["HITS"], direct)
        assert response.outputs["HITS"].shape == (unit.count, seti.MAX_HITS, 3)


def test_a_config_with_other_inputs_is_refused() -> None:
    args = {"model_config": json.dumps({"input": [{"name": "IMAGE"}]})}
    with pytest.raises(ValueError, match="inputs"):
        backend.Model(seti.MODEL_NAME, args, pb_utils=FakePbUtils)


def test_ensure_libpython_puts_libdir_first_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/other")
    serve.ensure_libpython()
    serve.ensure_libpython()
    libdir = sysconfig.get_config_var("LIBDIR")
    assert os.environ["LD_LIBRARY_PATH"].split(":") == [libdir, "/opt/other"]
