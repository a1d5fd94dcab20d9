"""The worker against the operator's own dispatcher (SQLite ledger, folder result store) and a
real Triton: the protocol both sides implement is the same protocol, down to the hash.

The dispatcher runs in this process on a loopback port (aiohttp in a thread), exactly as the
operator serves it; the worker runs the minilm-embed example job (06) with a non-ASCII item,
and the published results are read back from the store and checked against in-process MiniLM.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from curbside_api.v1alpha1 import inferencejob
from curbside_operator.dispatch import auth, results
from curbside_operator.dispatch.server import Dispatcher
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from curbside_operator.reconcile.placement import pod_name
from curbside_testbed import serve
from curbside_worker import runner
from curbside_worker.workloads import minilm
from tests.support.loopback import LoopbackApp

SENTENCES = [
    "A parked car is an idle computer.",
    "Ünïcode survives the trip.",
    "Work moves when a car leaves.",
]


class LiveDispatcher:
    def __init__(self, tmp_path: Path) -> None:
        self.store = results.FolderResultStore(tmp_path / "results", fsync=False)
        self.ledger = SqliteLedger(tmp_path / "ledger.db", durable=False)
        self.tokens = auth.StaticAuthenticator()  # no cluster here: tokens issued in-process
        self.dispatcher = Dispatcher(
            self.ledger, authenticator=self.tokens, pod_name=pod_name, stores=lambda uri: self.store
        )
        spec = inferencejob.InferenceJobSpec.model_validate(
            {
                "model": {"name": minilm.MODEL_NAME},
                "input": {"inline": {"items": SENTENCES, "itemsPerUnit": 2}},
                "output": {"uri": "file:///unused"},
            }
        )
        self.key = self.dispatcher.register_job("demo", "minilm-embed", "uid-1", spec)
        self.server = LoopbackApp(self.dispatcher.app())
        self.port = self.server.port

    def close(self) -> None:
        self.server.close()
        self.dispatcher.close()
        assert self.ledger.verify() == []
        self.ledger.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveDispatcher]:
    dispatcher = LiveDispatcher(tmp_path)
    yield dispatcher
    dispatcher.close()


def test_minilm_job_through_the_operators_dispatcher(
    live: LiveDispatcher, triton: serve.ServerProcess
) -> None:
    config = runner.WorkerConfig(
        dispatcher_url=f"http://127.0.0.1:{live.port}",
        namespace="demo",
        job="minilm-embed",
        car="car-3",
        owner="dave",
        token=live.tokens.issue(
            auth.Identity("demo", "default", pod_name("minilm-embed", "car-3"), "u", "car-3")
        ),
        triton_url=triton.grpc_url,
        model=minilm.MODEL_NAME,
        idle_exit_s=0.0,
        ready_timeout_s=30,
    )
    worker = runner.Worker(config)
    try:
        assert worker.run() == runner.EXIT_OK
    finally:
        worker.close()
    assert worker.stats.committed == 2
    published = [live.store.read("demo", "minilm-embed", unit) for unit in range(2)]
    items = [item for result in published for item in result["items"]]
    assert [item["item"] for item in items] == [0, 1, 2]
    assert [item["text"] for item in items] == SENTENCES
    reference = minilm.MiniLM().embed(SENTENCES)
    assert minilm.cosine([item["embedding"] for item in items], reference).min() >= 0.999
