"""Which cars run which job: Curbside's own scheduler for inference pods (``docs/design.md``,
"Placement").

Why this exists: kube-scheduler knows nothing of batteries, departures or owners, and it
places one pod at a time. The operator places a job's pods on cars itself (binding by
``nodeName``) in one pure pass over the fleet it already holds in memory:

1. **Filter** each car: Ready and eligible (the owner's policy, judged by the operator),
   the job's placement policy (accelerators, regions, min TOPS, eligibility overrides),
   a predicted departure later than one unit's expected time, a free slot (a car runs
   at most ``slots_per_car`` Curbside pods, one per job), and an accelerator the job's open
   work can run on (a replicated unit's results all come from one hardware class).
2. **Score** the rest: a long predicted idle window first (fewer migrations), then charging
   and unmetered network (free energy and data), then spread over owners (a later quorum
   needs distinct owners) and accelerator speed.
3. **Arbitrate** between jobs: higher ``priority`` first, then older; each job takes the
   best cars left, up to ``maxCars`` and its pending work.

Every rejected car is counted by reason, so a job that cannot be placed can say why in its
condition and Event ("0/200 cars: 150 NotEligible, 50 DepartingSoon").
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from curbside_api.v1alpha1 import inferencejob as ij
from curbside_api.v1alpha1 import vehiclenode as vn

MAX_POD_NAME = 63
IDLE_WINDOW_CAP = timedelta(hours=12)
NO_WORK_FOR_ACCELERATOR = "NoWorkForAccelerator"
"""A car passed over (or its idle pod removed): the job's open work wants another hardware class."""
POD_TERMINATING = "PodStillTerminating"
"""A car passed over: the job's previous pod there has not gone yet (its name is taken)."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What placement needs to know about one car."""

    name: str
    owner: str
    accelerator: str
    tops: int
    region: str | None
    ready: bool
    eligible: bool
    charging: bool
    unmetered: bool
    battery_percent: int | None
    departure: datetime | None
    departure_confidence: float

    @classmethod
    def of(cls, car: vn.VehicleNode, *, ready: bool) -> Candidate:
        status, op = car.status, car.status.operator
        departure = status.predicted_departure
        return cls(
            name=car.metadata.name or "",
            owner=car.spec.vehicle.owner,
            accelerator=car.spec.hardware.accelerator,
            tops=car.spec.hardware.tops,
            region=status.region,
            ready=ready,
            eligible=bool(op and op.eligible),
            charging=bool(status.charging),
            unmetered=status.network == vn.Network.UNMETERED,
            battery_percent=status.battery_percent,
            departure=departure.time if departure else None,
            departure_confidence=departure.confidence if departure else 0.0,
        )


@dataclasses.dataclass(frozen=True)
class Demand:
    """One job asking for cars in this round."""

    key: str
    spec: ij.InferenceJobSpec
    priority: int
    created: datetime
    cars_in_use: frozenset[str]
    wanted: int
    """How many more cars the job could use now (pending work, capped by maxCars)."""
    hardware: frozenset[str] | None = None
    """The accelerators the job's open work can run on (None: any)."""
    terminating: frozenset[str] = frozenset()
    """Cars where the job's previous pod is still terminating: its name (one per job and car)
    is taken until the car's kubelet lets it go, so the job goes to other cars meanwhile."""

    @property
    def room(self) -> int:
        """How many cars the job may get this round: ``wanted``, within ``maxCars``."""
        return max(0, min(self.wanted, self.spec.placement.max_cars - len(self.cars_in_use)))


@dataclasses.dataclass(frozen=True)
class Placement:
    """A job's new cars (best first) and why the other cars were passed over."""

    cars: tuple[str, ...]
    rejected: Mapping[str, int]

    def explain(self, *, total: int) -> str:
        reasons = ", ".join(
            f"{n} {r}" for r, n in sorted(self.rejected.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        return f"{len(self.cars)}/{total} cars placed" + (f"; passed over: {reasons}" if reasons else "")


def pod_name(job: str, car: str) -> str:
    """Deterministic pod name for (job, car): one live pod per pair, AlreadyExists is success."""
    name = f"{job}-{car}"
    if len(name) <= MAX_POD_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: MAX_POD_NAME - 11].rstrip('-')}-{digest}"


def reject_reason(
    car: Candidate, spec: ij.InferenceJobSpec, *, now: datetime, expected_unit: timedelta
) -> str | None:
    """Why ``car`` may not take this job now, or None if it may."""
    if not car.ready:
        return "NotReady"
    if not car.eligible:
        return "NotEligible"
    place = spec.placement
    if place.accelerators and car.accelerator not in place.accelerators:
        return "WrongAccelerator"
    if place.regions and car.region not in place.regions:
        return "WrongRegion"
    if place.min_tops is not None and car.tops < place.min_tops:
        return "TooSlow"
    overrides = place.eligibility
    if overrides is not None:
        if overrides.require_charging and not car.charging:
            return "NotCharging"
        if overrides.require_unmetered_network and not car.unmetered:
            return "MeteredNetwork"
        if (
            overrides.min_battery_percent is not None
            and (car.battery_percent or 0) < overrides.min_battery_percent
        ):
            return "BatteryLow"
    window = expected_unit
    if overrides is not None and overrides.min_departure_minutes is not None:
        window = max(window, timedelta(minutes=overrides.min_departure_minutes))
    if car.departure is not None and car.departure - now < window:
        return "DepartingSoon"
    return None


def score(car: Candidate, *, now: datetime, owner_load: int) -> float:
    """Higher is better; see the module docstring for the order of concerns."""
    if car.departure is None:
        idle = IDLE_WINDOW_CAP
    else:
        idle = min(IDLE_WINDOW_CAP, max(timedelta(0), car.departure - now))
        # An unsure prediction counts for less: blend towards the cap by (1 - confidence).
        idle = idle * car.departure_confidence + IDLE_WINDOW_CAP * (1 - car.departure_confidence)
    hours = idle.total_seconds() / 3600
    return hours + 2.0 * car.charging + 1.0 * car.unmetered - 1.5 * owner_load + car.tops / 10_000


def place(
    demands: Sequence[Demand],
    cars: Sequence[Candidate],
    *,
    busy: Mapping[str, int],
    now: datetime,
    slots_per_car: int = 1,
    expected_unit: timedelta = timedelta(minutes=10),
) -> dict[str, Placement]:
    """New cars for each job this round; ``busy`` counts Curbside pods already on each car."""
    used = collections.Counter(busy)
    out: dict[str, Placement] = {}
    for demand in sorted(demands, key=lambda d: (-d.priority, d.created, d.key)):
        if demand.room == 0:  # nothing to choose: no need to judge every car for it
            out[demand.key] = Placement(cars=(), rejected={})
            continue
        rejected: collections.Counter[str] = collections.Counter()
        owners = collections.Counter(c.owner for c in cars if c.name in demand.cars_in_use)
        ranked: list[tuple[float, str, Candidate]] = []
        for car in cars:
            if car.name in demand.cars_in_use:
                continue
            if car.name in demand.terminating:
                rejected[POD_TERMINATING] += 1
                continue
            reason = reject_reason(car, demand.spec, now=now, expected_unit=expected_unit)
            if reason is None and demand.hardware is not None and car.accelerator not in demand.hardware:
                reason = NO_WORK_FOR_ACCELERATOR
            if reason is None and used[car.name] >= slots_per_car:
                reason = "Busy"
            if reason is not None:
                rejected[reason] += 1
                continue
            ranked.append((score(car, now=now, owner_load=owners[car.owner]), car.name, car))
        ranked.sort(key=lambda item: (-item[0], item[1]))
        # Spread over owners: the best car of each owner not yet working on the job first,
        # then the rest in score order.
        first: list[tuple[float, str, Candidate]] = []
        rest: list[tuple[float, str, Candidate]] = []
        for item in ranked:
            (rest if item[2].owner in owners else first).append(item)
            owners[item[2].owner] += 1
        chosen = [name for _, name, _ in (first + rest)[: demand.room]]
        for name in chosen:
            used[name] += 1
        out[demand.key] = Placement(cars=tuple(chosen), rejected=dict(rejected))
    return out
