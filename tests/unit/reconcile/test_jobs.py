"""Table tests for the job planner: departures, completion, failure, placement and status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from curbside_api import conditions as conds
from curbside_api.v1alpha1 import inferencejob as ij
from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator.facts import Summary
from curbside_operator.reconcile import jobs
from tests.support.planning import NOW, car, job, pod, summary

LEAD = timedelta(seconds=60)


def plan(
    views: list[jobs.JobView],
    pods: list[jobs.PodView],
    fleet: dict[str, vn.VehicleNode],
    summaries: dict[str, Summary],
    *,
    ready: dict[str, bool] | None = None,
    **kw: Any,
) -> dict[str, jobs.JobPlan]:
    return jobs.plan_jobs(
        views,
        pods,
        fleet,
        ready if ready is not None else dict.fromkeys(fleet, True),
        summaries,
        now=NOW,
        departure_lead=LEAD,
        expected_unit=timedelta(seconds=30),
        **kw,
    )


@pytest.mark.parametrize(
    ("the_car", "ready", "want"),
    [
        (car("a"), True, None),
        (car("a", state="Parked"), True, None),
        (None, True, "CarGone"),
        (car("a"), False, "Offline"),
        (car("a", state="Driving"), True, "Driving"),
        (car("a", state="Asleep"), True, "Asleep"),
        (car("a", departs_in=30), True, "DepartingSoon"),
        (car("a", departs_in=60), True, "DepartingSoon"),
        (car("a", departs_in=61), True, None),
        (car("a", departs_in=-5), True, "DepartingSoon"),
        (car("a", eligible=False), True, "NotEligible"),
        (car("a", state="Driving"), False, "Offline"),  # silence is the first thing we know
    ],
)
def test_departure_reason(the_car: vn.VehicleNode | None, ready: bool, want: str | None) -> None:
    assert jobs.departure_reason(the_car, ready=ready, now=NOW, lead=LEAD) == want


def test_a_departing_car_is_fenced_and_its_pod_deleted_and_its_units_placed_elsewhere() -> None:
    view = job(placement={"maxCars": 2})
    fleet = {"a": car("a", state="Driving"), "b": car("b"), "c": car("c")}
    out = plan([view], [pod("a"), pod("b")], fleet, {view.key: summary(running=2, cars=frozenset("ab"))})[
        view.key
    ]
    assert out.fence == [("a", "Driving")]
    assert [p.car for p in out.delete] == ["a"]
    assert out.create == ["c"]  # b stays; a's slot goes to the one free eligible car


def test_healthy_pods_are_left_alone_and_full_jobs_get_no_more_cars() -> None:
    view = job(placement={"maxCars": 2})
    fleet = {"a": car("a"), "b": car("b"), "c": car("c")}
    out = plan([view], [pod("a"), pod("b")], fleet, {view.key: summary(running=2, cars=frozenset("ab"))})[
        view.key
    ]
    assert (out.fence, out.delete, out.create) == ([], [], [])


class Judged(dict[str, vn.VehicleNode]):
    """A fleet that counts how many cars were judged as placement candidates."""

    judged = 0

    def items(self) -> Any:
        for item in super().items():
            Judged.judged += 1
            yield item


def test_full_jobs_do_not_judge_the_fleet_but_a_job_with_room_does() -> None:
    Judged.judged = 0
    full, hungry = job("full", placement={"maxCars": 2}), job("hungry", placement={"maxCars": 3})
    fleet = Judged({n: car(n) for n in "abcdef"})
    pods = [pod("a", "full"), pod("b", "full")]
    out = plan([full], pods, fleet, {full.key: summary(pending=50, running=2, cars=frozenset("ab"))})
    assert out[full.key].create == []
    assert Judged.judged == 0  # pending work, but no room under maxCars: no car looked at
    busy = {full.key: summary(pending=50, running=2, cars=frozenset("ab")), hungry.key: summary(pending=50)}
    out = plan([full, hungry], pods, fleet, busy)
    assert len(out[hungry.key].create) == 3
    assert Judged.judged == 6


def test_pods_still_terminating_are_not_fenced_again_and_do_not_count() -> None:
    view = job(placement={"maxCars": 1})
    fleet = {"a": car("a", state="Driving"), "b": car("b")}
    out = plan([view], [pod("a", deleting=True)], fleet, {view.key: summary()})[view.key]
    assert out.fence == []
    assert out.create == ["b"]


def test_a_car_whose_pod_of_the_job_is_still_terminating_gets_no_new_one_until_it_is_gone() -> None:
    # The car came back (eligible) before its kubelet let the old pod go: a pod of the same
    # name would be refused (AlreadyExists) round after round; the job goes elsewhere meanwhile.
    view = job(placement={"maxCars": 1})
    fleet = {"a": car("a"), "b": car("b")}
    out = plan([view], [pod("a", deleting=True)], fleet, {view.key: summary()})[view.key]
    assert out.create == ["b"]
    out = plan([view], [], fleet, {view.key: summary()})[view.key]  # gone: a is the best car again
    assert out.create == ["a"]


def test_a_terminating_pod_of_another_job_still_holds_its_car() -> None:
    view = job("k", placement={"maxCars": 1})
    out = plan([view], [pod("a", job_name="j", deleting=True)], {"a": car("a")}, {view.key: summary()})
    assert out[view.key].create == []


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_pod_whose_worker_ended_is_cleaned_up(phase: str) -> None:
    view = job(placement={"maxCars": 1})
    out = plan([view], [pod("a", phase=phase)], {"a": car("a")}, {view.key: summary()})[view.key]
    assert out.fence == [("a", f"Pod{phase}")]


def test_no_more_cars_than_work_needs() -> None:
    view = job(placement={"maxCars": 10})
    fleet = {n: car(n) for n in "abcdef"}
    out = plan([view], [pod("a")], fleet, {view.key: summary(pending=3, running=0)})[view.key]
    assert len(out.create) == 2  # 3 pending units: the idle pod on a takes one


def test_replicas_need_a_car_each() -> None:
    view = job(placement={"maxCars": 10}, redundancy={"replicas": 2, "quorum": 2})
    fleet = {n: car(n) for n in "abcdef"}
    out = plan([view], [], fleet, {view.key: summary(total=2)})[view.key]
    assert len(out.create) == 4


def test_the_tail_of_a_replicated_job_moves_to_the_hardware_class_its_units_need() -> None:
    # Two units wait for a second result from an hw4 car. The idle pod on the hw5 car is
    # removed (it can get no unit and holds the job's last car), the pod computing on the
    # other hw5 car stays, and the new pods go to hw4 cars only.
    view = job(placement={"maxCars": 3}, redundancy={"replicas": 2, "quorum": 2})
    fleet = {
        "idle5": car("idle5", accelerator="hw5"),
        "busy5": car("busy5", accelerator="hw5"),
        "free5": car("free5", accelerator="hw5"),
        "free4": car("free4"),
    }
    tail = summary(
        total=4,
        pending=2,
        running=1,
        succeeded=1,
        cars=frozenset({"busy5"}),
        open_hardware=frozenset({"hw4"}),
    )
    out = plan([view], [pod("idle5"), pod("busy5")], fleet, {view.key: tail})[view.key]
    assert out.fence == [("idle5", "NoWorkForAccelerator")]
    assert out.create == ["free4"]
    # Nothing open at all (every unit leased): idle pods stay, they may get a unit that reopens.
    quiet = summary(
        total=4, pending=0, running=3, succeeded=1, cars=frozenset({"busy5"}), open_hardware=frozenset()
    )
    out = plan([view], [pod("idle5"), pod("busy5")], fleet, {view.key: quiet})[view.key]
    assert out.fence == []


def test_one_slot_per_car_and_priority_decides() -> None:
    low, high = job("low", priority=0), job("high", priority=10)
    fleet = {"a": car("a")}
    out = plan([low, high], [], fleet, {low.key: summary(), high.key: summary()})
    assert (out[high.key].create, out[low.key].create) == (["a"], [])


def test_a_car_busy_with_another_job_is_not_used() -> None:
    view = job("j")
    out = plan([view], [pod("a", job_name="other")], {"a": car("a")}, {view.key: summary()})[view.key]
    assert out.create == []
    assert out.status is not None
    succeeded = conds.find(
        ij.InferenceJobStatus.model_validate(out.status["status"]).conditions, conds.SUCCEEDED
    )
    assert succeeded is not None
    assert (succeeded.reason, "1 Busy" in succeeded.message) == (jobs.REASON_WAITING, True)
    assert out.events == [("Normal", jobs.REASON_WAITING, succeeded.message)]


def test_a_finished_job_stops_every_pod_and_says_succeeded() -> None:
    view = job()
    out = plan([view], [pod("a")], {"a": car("a")}, {view.key: summary(succeeded=10)})[view.key]
    assert out.fence == [("a", "JobFinished")]
    assert out.create == []
    assert out.status is not None
    status = ij.InferenceJobStatus.model_validate(out.status["status"])
    assert conds.is_true(status.conditions, conds.SUCCEEDED)
    assert (status.progress, status.completions, status.completed_units) == ("100%", "10/10", "0-9")
    assert status.completion_time is not None


def test_units_out_of_attempts_fail_the_job_with_an_event() -> None:
    view = job()
    out = plan([view], [], {}, {view.key: summary(succeeded=9, failed=1)})[view.key]
    assert out.status is not None
    status = ij.InferenceJobStatus.model_validate(out.status["status"])
    failed = conds.find(status.conditions, conds.FAILED)
    assert failed is not None
    assert (failed.status, failed.reason) == (conds.Status.TRUE, conds.REASON_MAX_ATTEMPTS_EXCEEDED)
    assert out.events[0][:2] == ("Warning", conds.REASON_MAX_ATTEMPTS_EXCEEDED)


def test_an_invalid_job_fails_once_with_its_reason() -> None:
    view = job()
    bad = jobs.JobView(view.job, failure=("ModelNotFound", "spec.model.name: no model 'x'"))
    out = plan([bad], [pod("a")], {"a": car("a")}, {})[view.key]
    assert out.fence == [("a", "JobFinished")]
    assert out.status is not None
    assert out.events == [("Warning", "ModelNotFound", "spec.model.name: no model 'x'")]
    # Written back, the next round has nothing new to say and posts no second Event.
    again = jobs.JobView(
        ij.InferenceJob.from_body(
            {
                **bad.job.model_dump(mode="json", by_alias=True, exclude_none=True),
                "status": out.status["status"],
            }
        ),
        failure=bad.failure,
    )
    assert again.finished
    repeat = plan([again], [], {"a": car("a")}, {})[view.key]
    assert (repeat.status, repeat.events) == (None, [])


def test_status_is_throttled_but_not_when_the_job_ends() -> None:
    view = job()
    last = {view.key: NOW - timedelta(seconds=1)}
    busy = plan([view], [pod("a")], {"a": car("a")}, {view.key: summary(running=3)}, last_status=last)[
        view.key
    ]
    assert busy.status is None  # written a second ago: the next round writes the newer summary
    done = plan([view], [], {}, {view.key: summary(succeeded=10)}, last_status=last)[view.key]
    assert done.status is not None


def test_an_unchanged_summary_writes_nothing() -> None:
    view = job()
    first = plan([view], [], {}, {view.key: summary(running=0)})[view.key]
    assert first.status is not None
    stored = jobs.JobView(
        ij.InferenceJob.from_body(
            {
                **view.job.model_dump(mode="json", by_alias=True, exclude_none=True),
                "status": first.status["status"],
            }
        )
    )
    again = plan([stored], [], {}, {view.key: summary(running=0)})[view.key]
    assert again.status is None


def test_a_deleted_job_only_stops_its_pods() -> None:
    view = job(deleting=True)
    out = plan([view], [pod("a")], {"a": car("a")}, {view.key: summary()})[view.key]
    assert out.fence == [("a", "JobFinished")]
    assert (out.create, out.status) == ([], None)


def test_no_waiting_explanation_while_the_fleet_picture_fills_in() -> None:
    view = job()
    out = plan([view], [], {}, {view.key: summary()}, explain=False)[view.key]
    assert out.events == []
    assert out.status is not None
    assert "WaitingForCars" not in str(out.status)


def test_a_job_on_hold_leaves_the_cars_to_the_others() -> None:
    old = jobs.JobView(job("old").job, hold=True)
    new = job("new", priority=0)
    out = plan([old, new], [], {"a": car("a")}, {old.key: summary(), new.key: summary()})
    assert (out[old.key].create, out[new.key].create) == ([], ["a"])
