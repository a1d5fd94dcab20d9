"""The real-car model repository, loaded by the real ``tritonserver`` (Python backend), serves
exactly what PyTriton serves: the layout a car's pod ships is tested, not just written."""

from __future__ import annotations

import numpy as np

from curbside_testbed import serve
from curbside_worker.triton import TritonClient
from curbside_worker.workloads import catalog, minilm, seti

SMALL = {"channels": "512", "timeSteps": "64", "maxDrift": "8", "signalsPerUnit": "2"}


def infer(url: str, name: str, spec: dict[str, object]) -> tuple[catalog.UnitInput, catalog.Arrays]:
    workload = catalog.workload(name)
    unit = workload.prepare(spec)
    with TritonClient(url) as client:
        outputs = client.infer_batches(name, workload.batches(unit, batch_size=2), outputs=workload.outputs)
    return unit, outputs


def test_the_repository_lists_both_models(repository_server: serve.ServerProcess) -> None:
    assert repository_server.models == (minilm.MODEL_NAME, seti.MODEL_NAME)


def test_repository_and_pytriton_give_the_same_answers(
    repository_server: serve.ServerProcess, triton: serve.ServerProcess
) -> None:
    spec = {"seed": 99, "unit": 5, "itemsPerUnit": 3, "parameters": SMALL}
    _, from_repository = infer(repository_server.grpc_url, seti.MODEL_NAME, spec)
    unit, from_pytriton = infer(triton.grpc_url, seti.MODEL_NAME, spec)
    np.testing.assert_array_equal(from_repository["HITS"], from_pytriton["HITS"])
    truth = seti.generate_unit(
        seed=99, unit=5, items=3, params=seti.SetiParams.from_parameters(SMALL)
    ).signals
    found = [
        s for row in range(unit.count) for s in seti.hits_to_signals(from_repository["HITS"][row], item=row)
    ]
    assert not seti.match(truth, found).missed

    sentences = {
        "unit": 0,
        "offset": 0,
        "items": ["Cars compute while parked.", "The dispatcher hands out units."],
    }
    _, embedded_here = infer(repository_server.grpc_url, minilm.MODEL_NAME, sentences)
    _, embedded_there = infer(triton.grpc_url, minilm.MODEL_NAME, sentences)
    assert minilm.cosine(embedded_here["EMBEDDING"], embedded_there["EMBEDDING"]).min() >= 0.9999
