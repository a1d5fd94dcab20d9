"""What the operator does for every InferenceJob, decided in one pure pass (``docs/design.md``).

Why this exists: a job's pods, its cars' departures and its status are one decision, taken
again and again (level-based): on every job or car event and on a timer. ``plan_jobs`` takes
what the operator holds in memory (jobs, their pods, the fleet, the ledger's summaries) and
the clock, and returns what to do; ``controllers.jobs.JobLoop`` carries it out in this order:

1. **Departures first.** A pod whose car is leaving (driving, asleep, silent, predicted to
   leave before a unit could finish, no longer eligible) is *fenced* in the ledger (its live
   attempts end, their units are leasable again) and only then deleted: a late result from
   that car is refused, and its units go to other cars at once.
2. **Finished or failed jobs** lose their pods; a deleted job is cleaned up, then released.
3. **Placement** of the jobs still short of cars (``reconcile.placement``), highest priority
   first, one pod per (job, car) with a deterministic name.
4. **Status**: a summary of the ledger, written only when it says something new, and at
   most every ``status_interval`` unless the job just ended.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from curbside_api import conditions as conds
from curbside_api.v1alpha1 import inferencejob as ij
from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator.facts import Summary
from curbside_operator.reconcile import placement

REASON_WAITING = "WaitingForCars"
REASON_MODEL_NOT_FOUND = "ModelNotFound"
REASON_UNITS_FAILED = "UnitsFailed"
JOB_FINISHED = "JobFinished"
NOT_DEPARTURES = frozenset({JOB_FINISHED, placement.NO_WORK_FOR_ACCELERATOR})
"""Reasons the operator itself removes a pod for: the car did not leave."""


@dataclasses.dataclass(frozen=True)
class PodView:
    """One of Curbside's inference pods, as last seen."""

    namespace: str
    name: str
    job: str
    car: str
    phase: str = "Pending"
    deleting: bool = False


@dataclasses.dataclass(frozen=True)
class JobView:
    """One InferenceJob as the operator holds it."""

    job: ij.InferenceJob
    failure: tuple[str, str] | None = None
    """(reason, message) when the job cannot run: its input, output or model is unusable."""
    hold: bool = False
    """Place no new pod this round (its last pod creation failed: it must not keep cars from
    other jobs while, say, its namespace is being deleted)."""

    @property
    def namespace(self) -> str:
        return self.job.metadata.namespace or ""

    @property
    def name(self) -> str:
        return self.job.metadata.name or ""

    @property
    def key(self) -> str:
        """The ledger key: ``namespace/name/uid``."""
        return f"{self.namespace}/{self.name}/{self.job.metadata.uid}"

    @property
    def deleting(self) -> bool:
        return self.job.metadata.deletion_timestamp is not None

    @property
    def finished(self) -> bool:
        c = self.job.status.conditions
        return conds.is_true(c, conds.SUCCEEDED) or conds.is_true(c, conds.FAILED)


@dataclasses.dataclass
class JobPlan:
    """What to do for one job, in order: fence and delete, create, write status."""

    fence: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(car, reason): end the car's attempts in the ledger, then delete its pod."""
    delete: list[PodView] = dataclasses.field(default_factory=list)
    create: list[str] = dataclasses.field(default_factory=list)
    status: dict[str, Any] | None = None
    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    """(type, reason, message) Events to post on the job."""


def departure_reason(
    car: vn.VehicleNode | None, *, ready: bool, now: datetime, lead: timedelta
) -> str | None:
    """Why work must leave this car now, or None if it may keep computing."""
    if car is None:
        return "CarGone"
    if not ready:
        return "Offline"
    state = car.status.state
    if state in (vn.VehicleState.DRIVING, vn.VehicleState.ASLEEP, vn.VehicleState.OFFLINE):
        return str(state)
    departure = car.status.predicted_departure
    if departure is not None and departure.time - now <= lead:
        return "DepartingSoon"
    op = car.status.operator
    if op is not None and not op.eligible:
        return "NotEligible"
    return None


def plan_jobs(
    jobs: Sequence[JobView],
    pods: Sequence[PodView],
    cars: Mapping[str, vn.VehicleNode],
    ready: Mapping[str, bool],
    summaries: Mapping[str, Summary],
    *,
    now: datetime,
    departure_lead: timedelta,
    expected_unit: timedelta,
    slots_per_car: int = 1,
    status_interval: timedelta = timedelta(seconds=2),
    last_status: Mapping[str, datetime] | None = None,
    explain: bool = True,
) -> dict[str, JobPlan]:
    """Every job's plan for this round (keys are ledger keys). ``explain``: say why a job
    found no car (False while the operator's picture of the fleet is still filling in)."""
    last_status = last_status or {}
    by_job: dict[tuple[str, str], list[PodView]] = {}
    busy: dict[str, int] = {}
    for pod in pods:
        by_job.setdefault((pod.namespace, pod.job), []).append(pod)
        # A terminating pod still holds its car (it runs until the car's kubelet lets it go).
        busy[pod.car] = busy.get(pod.car, 0) + 1
    plans: dict[str, JobPlan] = {}
    demands: list[placement.Demand] = []
    for view in jobs:
        plan = plans[view.key] = JobPlan()
        own = [p for p in by_job.get((view.namespace, view.name), []) if not p.deleting]
        terminating = frozenset(p.car for p in by_job.get((view.namespace, view.name), []) if p.deleting)
        summary = summaries.get(view.key)
        stop_all = view.deleting or view.failure is not None or (summary is not None and summary.done)
        for pod in own:
            reason = JOB_FINISHED if stop_all else _pod_reason(pod, cars, ready, now, departure_lead)
            if reason is None and summary is not None and _idle_elsewhere(pod, cars, summary):
                reason = placement.NO_WORK_FOR_ACCELERATOR
            if reason is not None:
                plan.fence.append((pod.car, reason))
                plan.delete.append(pod)
                busy[pod.car] = busy.get(pod.car, 1) - 1
        if view.deleting:
            continue
        plan.status, plan.events = _status(
            view, summary, now=now, last=last_status.get(view.key), interval=status_interval
        )
        if stop_all or summary is None or view.hold:
            continue
        staying = {p.car for p in own} - {car for car, _ in plan.fence}
        spec = view.job.spec
        need = math.ceil(summary.pending * spec.redundancy.replicas / spec.placement.max_units_per_car)
        idle_pods = max(0, len(staying) - len(summary.cars_in_use & staying))
        demands.append(
            placement.Demand(
                key=view.key,
                spec=spec,
                priority=spec.priority,
                created=view.job.metadata.creation_timestamp or now,
                cars_in_use=frozenset(staying),
                wanted=max(0, need - idle_pods),
                hardware=summary.open_hardware,
                terminating=terminating,
            )
        )
    # Every car is judged only when some job may take one: at 10,000 cars a round with room
    # costs 93 ms, a round of full jobs 19 ms (bench/plan_round.py). Judging them every round
    # would take most of the operator's CPU there and starve its dispatcher.
    hungry = any(d.room > 0 for d in demands)
    candidates = (
        [placement.Candidate.of(car, ready=ready.get(name, False)) for name, car in cars.items()]
        if hungry
        else []
    )
    placed = placement.place(
        demands, candidates, busy=busy, now=now, slots_per_car=slots_per_car, expected_unit=expected_unit
    )
    for demand in demands:
        chosen = placed[demand.key]
        plans[demand.key].create = list(chosen.cars)
        if explain and not chosen.cars and not demand.cars_in_use and demand.wanted > 0:
            view = next(v for v in jobs if v.key == demand.key)
            _waiting(plans[demand.key], view, chosen.explain(total=len(candidates)), now=now)
    return plans


def _idle_elsewhere(pod: PodView, cars: Mapping[str, vn.VehicleNode], summary: Summary) -> bool:
    """The pod holds no unit, its car's accelerator has no open work, and another class has:
    the car only keeps the job from a car that could compute (the tail of a replicated job
    wants the hardware class of each unit's first result)."""
    car, wanted = cars.get(pod.car), summary.open_hardware
    if car is None or not wanted or pod.car in summary.cars_in_use:
        return False
    return car.spec.hardware.accelerator not in wanted


def _pod_reason(
    pod: PodView,
    cars: Mapping[str, vn.VehicleNode],
    ready: Mapping[str, bool],
    now: datetime,
    lead: timedelta,
) -> str | None:
    if pod.phase in ("Succeeded", "Failed"):
        return f"Pod{pod.phase}"
    return departure_reason(cars.get(pod.car), ready=ready.get(pod.car, False), now=now, lead=lead)


def _status(
    view: JobView, summary: Summary | None, *, now: datetime, last: datetime | None, interval: timedelta
) -> tuple[dict[str, Any] | None, list[tuple[str, str, str]]]:
    """The job's status patch (None: nothing new, or too soon) and Events for a flip."""
    job, before = view.job, view.job.status
    conditions = [c.model_copy() for c in before.conditions]
    gen = job.metadata.generation or 0
    events: list[tuple[str, str, str]] = []
    after = before.model_copy(deep=True)
    ended = False

    def put(type: str, status: conds.Status, reason: str, message: str) -> bool:
        return conds.set_condition(
            conditions, type=type, status=status, reason=reason, message=message, generation=gen, now=now
        )

    if view.failure is not None:
        reason, message = view.failure
        ended = put(conds.FAILED, conds.Status.TRUE, reason, message)
        put(conds.SUCCEEDED, conds.Status.FALSE, reason, message)
        put(conds.RUNNING, conds.Status.FALSE, reason, message)
        if ended:
            events.append(("Warning", reason, message))
    elif summary is not None:
        units = ij.UnitCounts(
            total=summary.total,
            pending=summary.pending,
            running=summary.running,
            succeeded=summary.succeeded,
            failed=summary.failed,
        )
        after.units = units
        after.completed_units = _fit(summary.completed_intervals)
        after.progress = ij.progress_text(units)
        after.completions = ij.completions_text(units)
        after.cars_in_use = len(summary.cars_in_use)
        after.departures_handled = summary.departures
        after.reruns, after.results, after.verified_units = summary.reruns, summary.results, summary.verified
        if summary.attempts and after.start_time is None:
            after.start_time = now.replace(microsecond=0)
        if summary.done:
            if summary.failed:
                msg = f"{summary.failed} of {summary.total} units ran out of attempts"
                ended = put(conds.FAILED, conds.Status.TRUE, conds.REASON_MAX_ATTEMPTS_EXCEEDED, msg)
                put(conds.SUCCEEDED, conds.Status.FALSE, conds.REASON_MAX_ATTEMPTS_EXCEEDED, msg)
                if ended:
                    events.append(("Warning", conds.REASON_MAX_ATTEMPTS_EXCEEDED, msg))
            else:
                msg = f"all {summary.total} units succeeded ({summary.reruns} re-runs)"
                ended = put(conds.SUCCEEDED, conds.Status.TRUE, conds.REASON_COMPLETED, msg)
            put(conds.RUNNING, conds.Status.FALSE, conds.REASON_COMPLETED, "no units left to run")
        else:
            running = summary.running > 0
            cars = len(summary.cars_in_use)
            msg = f"{summary.running} units running on {cars} cars, {summary.pending} pending"
            reason = conds.REASON_UNITS_RUNNING if running else conds.REASON_PENDING
            put(conds.RUNNING, conds.Status.TRUE if running else conds.Status.FALSE, reason, msg)
            _keep_waiting_or(conditions, conds.REASON_UNITS_RUNNING if running else None, msg, gen, now)
    if ended:
        after.completion_time = now.replace(microsecond=0)
    after.conditions = conditions
    if after == before:
        return None, events
    if not ended and last is not None and now - last < interval:
        return None, events  # throttled: the next round writes the newer summary
    return {"status": after.model_dump(mode="json", by_alias=True, exclude_none=True)}, events


def _keep_waiting_or(
    conditions: list[conds.Condition], reason: str | None, message: str, gen: int, now: datetime
) -> None:
    """Succeeded=False says what the job is doing (the printer column shows its reason)."""
    current = conds.find(conditions, conds.SUCCEEDED)
    if reason is None and current is not None and current.reason == REASON_WAITING:
        return  # keep the placement explanation until a unit runs
    conds.set_condition(
        conditions,
        type=conds.SUCCEEDED,
        status=conds.Status.FALSE,
        reason=reason or conds.REASON_PENDING,
        message=message,
        generation=gen,
        now=now,
    )


def _waiting(plan: JobPlan, view: JobView, explanation: str, *, now: datetime) -> None:
    """No car could be found: say why in Succeeded=False/WaitingForCars and one Event."""
    base = (
        plan.status["status"]
        if plan.status
        else view.job.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    )
    status = ij.InferenceJobStatus.model_validate(base)
    conditions = list(status.conditions)
    gen = view.job.metadata.generation or 0
    current = conds.find(conditions, conds.SUCCEEDED)
    if current is not None and (current.reason, current.message) == (REASON_WAITING, explanation):
        return
    conds.set_condition(
        conditions,
        type=conds.SUCCEEDED,
        status=conds.Status.FALSE,
        reason=REASON_WAITING,
        message=explanation,
        generation=gen,
        now=now,
    )
    status.conditions = conditions
    plan.status = {"status": status.model_dump(mode="json", by_alias=True, exclude_none=True)}
    if current is None or current.reason != REASON_WAITING:
        plan.events.append(("Normal", REASON_WAITING, explanation))


def _fit(text: str) -> str:
    """``completedUnits`` is bounded (64 KiB); a very fragmented set is cut at a whole interval."""
    limit = 65_536
    if len(text) <= limit:
        return text
    return text[: text.rfind(",", 0, limit)]
