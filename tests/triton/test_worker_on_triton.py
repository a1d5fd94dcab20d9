"""The worker against a real Triton server: correct results, a clean stop, a dispatcher restart.

The server is PyTriton's ``tritonserver`` with both workloads (conftest); the dispatcher is the
fake from the worker's unit tests, over real HTTP. Shapes are small so this stays quick on
two cores, but every path is the production one: gRPC, dynamic batching, the same detector
and MiniLM as the in-process reference.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from curbside_testbed import serve
from curbside_worker import runner
from curbside_worker.workloads import catalog, minilm, seti
from tests.support.dispatcher import FakeDispatcher

TOKEN = "t0ken"
SMALL = {"channels": "512", "timeSteps": "64", "maxDrift": "8", "signalsPerUnit": "3"}


def seti_input(unit: int, *, items: int = 3, parameters: dict[str, str] = SMALL) -> dict[str, Any]:
    return {"seed": 1420405752, "unit": unit, "itemsPerUnit": items, "parameters": parameters}


def worker_for(
    fake: FakeDispatcher, triton: serve.ServerProcess, *, model: str, **extra: Any
) -> runner.Worker:
    config = runner.WorkerConfig(
        dispatcher_url=fake.url,
        namespace=fake.namespace,
        job=fake.name,
        car="car-42",
        owner="carol",
        token=TOKEN,
        triton_url=triton.grpc_url,
        model=model,
        batch_size=2,
        idle_exit_s=extra.pop("idle_exit_s", 0.0),
        idle_poll_s=0.05,
        backoff_max_s=0.5,
        ready_timeout_s=30,
        **extra,
    )
    return runner.Worker(config)


@pytest.fixture
def reference() -> Iterator[minilm.MiniLM]:
    return minilm.MiniLM()


def test_seti_units_find_every_injected_signal(triton: serve.ServerProcess) -> None:
    fake = FakeDispatcher([seti_input(u) for u in range(3)], token=TOKEN).start()
    try:
        worker = worker_for(fake, triton, model=seti.MODEL_NAME)
        assert worker.run() == runner.EXIT_OK
        worker.close()
    finally:
        fake.stop()
    assert fake.kinds().count("complete") == 3
    params = seti.SetiParams.from_parameters(SMALL)
    for unit, state in enumerate(fake.units):
        assert state.result is not None
        assert state.output_hash == catalog.output_hash(state.result)
        truth = seti.generate_unit(seed=1420405752, unit=unit, items=3, params=params).signals
        found = [
            seti.Signal(item=entry["item"], channel=c["channel"], drift=c["drift"], snr=c["snr"])
            for entry in state.result["items"]
            for c in entry["candidates"]
        ]
        match = seti.match(truth, found)
        assert not match.missed, f"unit {unit} missed {match.missed}"
        assert not match.false_positives, f"unit {unit}: {match.false_positives}"


def test_minilm_embeddings_equal_in_process_ones(
    triton: serve.ServerProcess, reference: minilm.MiniLM, tmp_path: Path
) -> None:
    data = tmp_path / "sentences.txt"
    data.write_text("".join(f"Sentence number {n} about parked cars.\n" for n in range(8)), encoding="utf-8")
    inputs = [
        {"seed": 3, "unit": 0, "itemsPerUnit": 5, "parameters": {}},
        {"unit": 1, "offset": 2, "items": ["A parked car is an idle computer.", "Ünïcode is fine too."]},
        {"uri": data.as_uri(), "unit": 2, "offset": 4, "count": 4},
    ]
    fake = FakeDispatcher(inputs, token=TOKEN).start()
    try:
        worker = worker_for(fake, triton, model=minilm.MODEL_NAME)
        assert worker.run() == runner.EXIT_OK
        worker.close()
    finally:
        fake.stop()
    assert fake.committed == 3
    for state in fake.units:
        assert state.result is not None
        texts = [item["text"] for item in state.result["items"]]
        served = np.array([item["embedding"] for item in state.result["items"]])
        assert minilm.cosine(served, reference.embed(texts)).min() >= 0.999
    assert [i["item"] for i in fake.units[2].result["items"]] == [4, 5, 6, 7]  # type: ignore[index]


def test_sigterm_mid_unit_releases_the_lease(triton: serve.ServerProcess) -> None:
    long_unit = seti_input(0, items=12, parameters={**SMALL, "channels": "2048", "timeSteps": "128"})
    fake = FakeDispatcher([long_unit], token=TOKEN).start()
    argv = [
        sys.executable,
        "-m",
        "curbside_worker",
        f"--dispatcher-url={fake.url}",
        f"--job-namespace={fake.namespace}",
        f"--job-name={fake.name}",
        "--car=car-9",
        "--owner=carol",
        f"--triton-url={triton.grpc_url}",
        f"--model={seti.MODEL_NAME}",
        "--batch-size=1",
        "--inflight=1",
    ]
    process = subprocess.Popen(argv, env={**os.environ, "CURBSIDE_TOKEN": TOKEN})
    try:
        fake.wait_for(lambda: "lease" in fake.kinds(0), timeout=60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        fake.wait_for(lambda: "release" in fake.kinds(0), timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        fake.stop()
    assert "complete" not in fake.kinds()
    assert fake.units[0].holder is None


def test_the_worker_survives_a_dispatcher_restart(triton: serve.ServerProcess) -> None:
    inputs = [{"seed": 8, "unit": u, "itemsPerUnit": 4, "parameters": {}} for u in range(4)]
    fake = FakeDispatcher(inputs, token=TOKEN).start()
    worker = worker_for(fake, triton, model=minilm.MODEL_NAME, idle_exit_s=1.0)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.run()), daemon=True)
    try:
        thread.start()
        fake.wait_for(lambda: fake.committed >= 1, timeout=60)
        fake.stop()
        waiter = threading.Event()
        for _ in range(400):
            if worker.dispatcher_failures >= 2 or waiter.wait(0.05):
                break
        assert worker.dispatcher_failures >= 2, "the worker never noticed the dispatcher was down"
        fake.restart()
        thread.join(timeout=90)
    finally:
        worker.stop.set()
        thread.join(timeout=30)
        worker.close()
        fake.stop()
    assert codes == [runner.EXIT_OK]
    assert fake.committed == 4
    assert fake.kinds().count("complete") == 4
