"""The worker's loop against a real HTTP dispatcher (the fake) and a stand-in Triton.

What must hold: every unit is committed once with the sha256 of its canonical JSON; a fenced
unit is dropped, never committed; a stop mid-unit releases the lease; a dispatcher restart
is waited out; a refused token, an unknown job and bad input end the worker with their codes.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator

import pytest

from curbside_worker import runner
from curbside_worker.workloads import minilm
from tests.support.dispatcher import FakeDispatcher, make_worker, run_in_thread
from tests.support.fake_triton import TOKEN, FakeTriton, generated


@pytest.fixture
def dispatcher() -> Iterator[FakeDispatcher]:
    fake = FakeDispatcher([generated(u) for u in range(3)], token=TOKEN, unit_timeout_s=1.5).start()
    yield fake
    fake.stop()


def test_commits_every_unit_once_named_for_it_with_its_canonical_hash(dispatcher: FakeDispatcher) -> None:
    worker = make_worker(dispatcher, FakeTriton())
    assert worker.run() == runner.EXIT_OK
    assert dispatcher.committed == 3
    assert dispatcher.kinds().count("complete") == 3
    for unit, state in enumerate(dispatcher.units):
        assert state.result is not None
        canonical = json.dumps(state.result, sort_keys=True, separators=(",", ":")).encode()
        assert state.output_hash == hashlib.sha256(canonical).hexdigest()
        assert state.result["unit"] == unit  # the dispatcher refuses a result naming another unit
        texts = minilm.generate_sentences(seed=7, unit=unit, count=3)
        assert [item["text"] for item in state.result["items"]] == texts
        assert [item["embedding"][0] for item in state.result["items"]] == [float(len(t)) for t in texts]
    assert worker.stats.committed == 3
    assert worker.stats.items == 9


def test_max_units_stops_after_that_many_commits(dispatcher: FakeDispatcher) -> None:
    worker = make_worker(dispatcher, FakeTriton(), max_units=2)
    assert worker.run() == runner.EXIT_OK
    assert dispatcher.committed == 2


def test_renews_while_working_and_drops_a_fenced_unit(dispatcher: FakeDispatcher) -> None:
    gate = threading.Event()
    triton = FakeTriton(gate=gate)
    worker = make_worker(dispatcher, triton, max_units=1)
    thread, codes = run_in_thread(worker)
    dispatcher.wait_for(lambda: "renew" in dispatcher.kinds(0), timeout=20)
    dispatcher.fence(0)
    dispatcher.wait_for(lambda: "fenced-renew" in dispatcher.kinds(0), timeout=20)
    gate.set()
    thread.join(timeout=30)
    assert codes == [runner.EXIT_OK]
    attempts = [attempt for kind, unit, attempt, _ in dispatcher.events if kind == "complete" and unit == 0]
    assert attempts == [3]  # leased again after the fence (attempt 2 was the fence itself)
    assert ("complete", 0, 1, "car-1") not in dispatcher.events
    assert worker.stats.fenced == 1


def test_stop_mid_unit_releases_the_lease_and_commits_nothing(dispatcher: FakeDispatcher) -> None:
    triton = FakeTriton(gate=threading.Event())
    worker = make_worker(dispatcher, triton, idle_exit_s=None)
    thread, codes = run_in_thread(worker)
    assert triton.inside.wait(20)
    worker.stop.set()
    thread.join(timeout=20)
    assert codes == [runner.EXIT_OK]
    assert dispatcher.kinds(0)[0] == "lease"
    assert "release" in dispatcher.kinds(0)
    assert "complete" not in dispatcher.kinds()
    assert dispatcher.units[0].holder is None


def test_waits_out_a_dispatcher_restart(dispatcher: FakeDispatcher) -> None:
    gate = threading.Event()
    triton = FakeTriton(gate=gate)
    worker = make_worker(dispatcher, triton, idle_exit_s=1.0)
    thread, codes = run_in_thread(worker)
    assert triton.inside.wait(20)
    dispatcher.stop()
    gate.set()
    assert_eventually(lambda: worker.dispatcher_failures >= 2, timeout=20)
    dispatcher.restart()
    thread.join(timeout=60)
    assert codes == [runner.EXIT_OK]
    assert dispatcher.committed == 3
    assert dispatcher.kinds().count("complete") == 3


def test_a_wrong_token_is_refused(dispatcher: FakeDispatcher) -> None:
    assert make_worker(dispatcher, FakeTriton(), token="guess").run() == runner.EXIT_REFUSED
    assert dispatcher.unauthorized == 1
    assert dispatcher.kinds() == []


def test_an_unknown_job_ends_the_worker(dispatcher: FakeDispatcher) -> None:
    assert make_worker(dispatcher, FakeTriton(), job="gone").run() == runner.EXIT_OK
    assert dispatcher.kinds() == []


def test_bad_input_releases_and_exits_with_its_code() -> None:
    fake = FakeDispatcher([{"uri": "s3://bucket/items.txt", "offset": 0, "count": 2}], token=TOKEN).start()
    try:
        assert make_worker(fake, FakeTriton()).run() == runner.EXIT_BAD_INPUT
        assert without_renewals(fake.kinds(0)) == ["lease", "release-error"]
    finally:
        fake.stop()


def test_non_ascii_results_hash_as_the_dispatcher_does() -> None:
    fake = FakeDispatcher(
        [{"unit": 0, "offset": 0, "items": ["Ünïcode café", "日本語"]}], token=TOKEN
    ).start()
    try:
        assert make_worker(fake, FakeTriton()).run() == runner.EXIT_OK
        assert without_renewals(fake.kinds(0)) == ["lease", "complete"]
    finally:
        fake.stop()


def test_a_rejected_result_is_released_with_an_error_and_ends_the_worker(
    dispatcher: FakeDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner.catalog, "output_hash", lambda result: "0" * 64)
    assert make_worker(dispatcher, FakeTriton()).run() == runner.EXIT_REJECTED
    assert without_renewals(dispatcher.kinds(0)) == ["lease", "bad-hash", "release-error"]
    assert dispatcher.committed == 0


def without_renewals(kinds: list[str]) -> list[str]:
    return [kind for kind in kinds if kind != "renew"]


def assert_eventually(predicate: Callable[[], bool], *, timeout: float) -> None:
    """Wait (on an Event, not a bare sleep) until ``predicate()``; fail after ``timeout``."""
    waiter = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        waiter.wait(0.05)
    raise AssertionError("condition not reached in time")
