"""The simulator's kubelet for inference pods: pods become real workers, departures kill them.

What must hold: a pod's ``worker`` environment becomes the ``WorkerConfig`` that ``curbside
worker`` would build, with the simulator's Triton, and an unusable one is refused naming the
variable; a killed worker sends nothing more to the dispatcher (no release, no commit: its
attempt stays live until fenced), while a deleted pod's worker releases its unit; at most
``max_workers`` run; a car that cannot work gets no worker. The dispatcher is the worker
tests' fake over real HTTP; Triton is a gated stand-in, so a worker can be caught mid-unit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from curbside_agent.signals import reading, sources
from curbside_sim import driver, runner, workers
from curbside_worker import runner as worker_runner
from curbside_worker.workloads import minilm
from tests.support import wait
from tests.support.dispatcher import FakeDispatcher
from tests.support.fake_triton import TOKEN, FakeTriton, generated
from tests.support.sim_pool import CAR, Fleet, make_pool, pod


def test_the_pods_worker_environment_with_the_simulators_triton() -> None:
    config = workers.worker_config(pod({"CURBSIDE_IDLE_EXIT": "2.5"}), triton_url="127.0.0.1:39001")
    assert config == worker_runner.WorkerConfig(
        dispatcher_url="http://d:8080",
        namespace="demo",
        job="job",
        car=CAR,
        owner="alice",
        token=TOKEN,
        triton_url="127.0.0.1:39001",
        model=minilm.MODEL_NAME,
        batch_size=2,
        idle_exit_s=2.5,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CURBSIDE_TOKEN": ""}, "lacks CURBSIDE_TOKEN"),
        (
            {"CURBSIDE_DISPATCHER_URL": "", "CURBSIDE_MODEL": ""},
            "lacks CURBSIDE_DISPATCHER_URL, CURBSIDE_MODEL",
        ),
        ({"CURBSIDE_BATCH_SIZE": "eight"}, "CURBSIDE_BATCH_SIZE is 'eight', not a number >= 1"),
        ({"CURBSIDE_INFLIGHT": "0"}, "CURBSIDE_INFLIGHT is '0', not a number >= 1"),
        ({"CURBSIDE_IDLE_EXIT": "-1"}, "CURBSIDE_IDLE_EXIT is '-1', not a number >= 0"),
        ({"CURBSIDE_MODEL": "resnet"}, "CURBSIDE_MODEL: unknown model 'resnet'"),
        ({"CURBSIDE_CAR": "car-00008"}, "CURBSIDE_CAR is 'car-00008' but the pod is bound to 'car-00007'"),
    ],
)
def test_an_unusable_environment_is_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(workers.PodError, match="pod demo/job-car-00007: .*") as caught:
        workers.worker_config(pod(env), triton_url="t:1")
    assert message in str(caught.value)


def test_a_pod_without_a_worker_container_is_refused() -> None:
    body = pod()
    body["spec"]["containers"] = body["spec"]["containers"][:1]
    with pytest.raises(workers.PodError, match="no container named 'worker'"):
        workers.worker_config(body, triton_url="t:1")


# -- workers against the fake dispatcher ------------------------------------------------------------
@pytest.fixture
def dispatcher() -> Iterator[FakeDispatcher]:
    fake = FakeDispatcher([generated(u) for u in range(4)], token=TOKEN, unit_timeout_s=1.5).start()
    yield fake
    fake.stop()


def checked(pool: workers.WorkerPool) -> bool:
    """``pool.check()`` (as the simulator's tick does), then True."""
    pool.check()
    return True


def ended(pool: workers.WorkerPool) -> bool:
    return checked(pool) and not pool.running


def test_a_killed_worker_sends_nothing_more_and_its_attempt_stays_live(dispatcher: FakeDispatcher) -> None:
    fleet, triton = Fleet(), FakeTriton(gate=threading.Event())
    pool, lines = make_pool(fleet, triton)
    pool.pod_event("ADDED", pod(url=dispatcher.url))
    assert pool.totals.started == 1
    assert triton.inside.wait(20)  # mid-unit: unit 0 leased, inference under way
    run = next(iter(pool.running.values()))
    dispatcher.wait_for(lambda: "renew" in dispatcher.kinds(0), timeout=20)  # the renewer is live too

    fleet.why[CAR] = "Driving"
    pool.check()
    seen = list(dispatcher.events)
    run.thread.join(timeout=20)
    assert not run.thread.is_alive()
    assert run.switch.refused >= 1  # it tried to release: refused before anything was sent
    triton.gate.set()  # type: ignore[union-attr]
    assert dispatcher.events == seen
    assert [kind for kind in dispatcher.kinds(0) if kind not in ("renew",)] == ["lease"]
    assert (dispatcher.units[0].holder, dispatcher.units[0].attempt) == (CAR, 1)  # live until fenced
    assert dispatcher.committed == 0

    pool.pod_event("DELETED", pod(url=dispatcher.url))  # the operator deletes the pod afterwards
    assert wait.until(lambda: ended(pool), timeout=10, what="the worker reaped")
    assert (pool.totals.killed, pool.totals.stopped, pool.totals.abandoned) == (1, 0, 1)
    assert any("killed (Driving) holding unit 0 attempt 1" in line for line in lines)
    assert dispatcher.events == seen


def test_a_deleted_pods_worker_releases_its_unit(dispatcher: FakeDispatcher) -> None:
    fleet, triton = Fleet(), FakeTriton(gate=threading.Event())
    pool, _ = make_pool(fleet, triton)
    pool.pod_event("ADDED", pod(url=dispatcher.url))
    assert triton.inside.wait(20)
    deleting = pod(url=dispatcher.url)
    deleting["metadata"]["deletionTimestamp"] = "2025-03-03T06:00:00Z"
    pool.pod_event("MODIFIED", deleting)
    dispatcher.wait_for(lambda: "release" in dispatcher.kinds(0), timeout=20)
    assert wait.until(lambda: ended(pool), timeout=10, what="the worker reaped")
    assert (pool.totals.killed, pool.totals.stopped, pool.totals.abandoned) == (0, 1, 0)
    assert dispatcher.committed == 0


def test_workers_commit_and_at_most_max_workers_run(dispatcher: FakeDispatcher) -> None:
    fleet, triton = Fleet(), FakeTriton()
    pool, _ = make_pool(fleet, triton, max_workers=1)
    pool.pod_event("ADDED", pod(url=dispatcher.url, uid="a"))
    pool.pod_event("ADDED", pod(url=dispatcher.url, uid="b", car="car-00008"))
    pool.pod_event("ADDED", pod(url=dispatcher.url, uid="c", car="car-99999"))  # not one of the pool's cars
    assert (len(pool.running), len(pool.waiting)) == (1, 1)
    dispatcher.wait_for(lambda: dispatcher.committed == 4, timeout=30)
    pool.sync([pod(url=dispatcher.url, uid="b", car="car-00008")])  # "a" went while nobody watched
    assert wait.until(lambda: checked(pool) and "b" in pool.running, timeout=20, what="pod b's worker")
    assert pool.committed() == 4
    pool.close()
    assert (pool.totals.started, pool.totals.stopped, pool.totals.refused) == (2, 2, 0)
    assert not pool.running


def test_no_worker_for_a_car_that_cannot_work_or_a_pod_that_cannot_run(dispatcher: FakeDispatcher) -> None:
    fleet, triton = Fleet(), FakeTriton()
    pool, lines = make_pool(fleet, triton)
    fleet.why[CAR] = "Asleep"
    pool.pod_event("ADDED", pod(url=dispatcher.url))
    pool.pod_event("ADDED", pod({"CURBSIDE_TOKEN": ""}, url=dispatcher.url, uid="u2", car="car-00008"))
    assert pool.totals.refused == 2
    assert not pool.running
    assert not pool.waiting
    assert dispatcher.events == []
    assert any("not started (Asleep)" in line for line in lines)
    assert any("lacks CURBSIDE_TOKEN" in line for line in lines)


# -- which simulated cars may work -----------------------------------------------------------------
def test_a_car_driving_asleep_or_vanished_cannot_work() -> None:
    parked = reading.Reading(
        timestamp=datetime(2025, 3, 3, tzinfo=UTC), gear=reading.Gear.PARK, battery_percent=70
    )
    car = driver.Car(index=0, agent=None, source=sources.MemorySource())  # type: ignore[arg-type]
    assert runner.blocker(car) == "no reading"
    for value, expected in [
        (parked, None),
        (parked._replace(charging=True), None),
        (parked._replace(asleep=True), "Asleep"),
        (parked._replace(gear=reading.Gear.DRIVE, speed_kph=30.0), "Driving"),
    ]:
        car.source.update(value)
        assert runner.blocker(car) == expected
    car.silent = True
    assert runner.blocker(car) == "vanished"


def test_real_work_is_off_by_default_and_takes_one_triton() -> None:
    args = runner.parser().parse_args([])
    assert (args.triton_url, args.serve_models, args.max_workers) == (None, None, 8)
    assert runner.main(["--triton-url", "127.0.0.1:8001", "--serve-models", "seti-spike-search"]) == 2
