"""The worker's shared-memory path against a real ``tritonserver``: Triton reads the regions,
answers exactly what the in-message path answers, and nothing stays registered or on disk."""

from __future__ import annotations

import glob

import numpy as np
import tritonclient.grpc as grpcclient

from curbside_testbed import serve
from curbside_worker.triton import TritonClient
from curbside_worker.workloads import catalog, seti

SMALL = {"channels": "512", "timeSteps": "64", "maxDrift": "8", "signalsPerUnit": "2"}


def regions(url: str) -> list[str]:
    with grpcclient.InferenceServerClient(url) as admin:
        status = admin.get_system_shared_memory_status(as_json=True)
    return sorted(status.get("regions", {}))  # keyed by region name


def test_large_inputs_reach_triton_through_shared_memory_with_the_same_answers(
    repository_server: serve.ServerProcess,
) -> None:
    triton = repository_server  # the cars' server: tritonserver, the shared-memory extension open
    workload = catalog.workload(seti.MODEL_NAME)
    unit = workload.prepare({"seed": 11, "unit": 3, "itemsPerUnit": 5, "parameters": SMALL})

    # 64 KiB of voltages per spectrogram: every batch of 2 is large enough for shared memory.
    def hits(client: TritonClient, batch: int) -> np.ndarray:
        batches = workload.batches(unit, batch_size=batch)
        return client.infer_batches(seti.MODEL_NAME, batches, outputs=["HITS"])["HITS"]

    with TritonClient(triton.grpc_url) as fast, TritonClient(triton.grpc_url, shared_memory=False) as plain:
        via_memory = hits(fast, 2)
        used = regions(triton.grpc_url)
        bigger = hits(fast, 5)  # slot 0's region grows
        via_message = hits(plain, 2)
        assert fast.uses_shared_memory
        assert fast._regions is not None
        prefix = fast._regions.prefix
    assert used == [f"{prefix}-0", f"{prefix}-1"]  # one region per request in flight
    np.testing.assert_array_equal(via_memory, via_message)
    np.testing.assert_array_equal(bigger, via_message)
    params = seti.SetiParams.from_parameters(SMALL)
    truth = seti.generate_unit(seed=11, unit=3, items=5, params=params).signals
    found = [s for row in range(unit.count) for s in seti.hits_to_signals(via_memory[row], item=row)]
    assert not seti.match(truth, found).missed
    assert prefix not in " ".join(regions(triton.grpc_url))  # closed: unregistered
    assert glob.glob(f"/dev/shm/{prefix}-*") == []  # and gone from /dev/shm


def test_pytriton_refuses_registration_so_the_worker_sends_tensors_in_the_message(
    triton: serve.ServerProcess,
) -> None:
    # PyTriton restricts the shared-memory protocol to holders of its access token.
    workload = catalog.workload(seti.MODEL_NAME)
    unit = workload.prepare({"seed": 11, "unit": 3, "itemsPerUnit": 3, "parameters": SMALL})
    with TritonClient(triton.grpc_url) as client:
        out = client.infer_batches(seti.MODEL_NAME, workload.batches(unit, batch_size=2), outputs=["HITS"])
        assert not client.uses_shared_memory
    params = seti.SetiParams.from_parameters(SMALL)
    truth = seti.generate_unit(seed=11, unit=3, items=3, params=params).signals
    found = [s for row in range(unit.count) for s in seti.hits_to_signals(out["HITS"][row], item=row)]
    assert not seti.match(truth, found).missed
    assert glob.glob("/dev/shm/curbside-*") == []
