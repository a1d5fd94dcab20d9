"""What state the car is in, and when it will most likely leave: pure functions of a reading.

Why this module exists: two questions decide everything else the agent does. "Is the car
parked?" drives the safety interlock and must have one obvious answer (anything but Park, or
any speed, is ``Driving``). "When will it leave?" lets the operator refuse to place a unit the
car cannot finish, and start the replacement elsewhere before the car goes, instead of
reacting afterwards as Kubernetes' own eviction does.

The departure predictor combines the car's own early signals, strongest first:

| basis | signal | predicted departure | confidence |
|---|---|---|---|
| ``SeatOccupied`` | someone sits in the driver's seat | now + 1 min | 0.95 |
| ``DoorAndKey`` | a door is unlocked and the key is near | now + 2 min | 0.9 |
| ``DoorUnlocked`` | a door is unlocked | now + 3 min | 0.7 |
| ``KeyNearby`` | the key is near (owner walking up) | now + 5 min | 0.6 |
| ``ScheduledDeparture`` | the owner set a departure / preconditioning time | that time | 0.9 |
| ``ChargeComplete`` | charging finishes at a known time | that time | 0.3 |
| ``LearnedPattern`` | past departures in this weekday's slot | slot start | share of days with one |

Imminent signals are anchored at ``now``: while a door stays unlocked the prediction keeps
saying "in three minutes", which is the truth as far as anyone can tell. The answer is the
earliest candidate at least ``min_confidence`` sure; when none is, the most confident one
(so the operator still sees a weak hint, marked as such).

Everything here is pure: ``now`` is always a parameter, never read from a clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum

from curbside_agent.signals import reading
from curbside_api.v1alpha1 import vehiclenode

SLOT = timedelta(minutes=30)
"""Width of a learned-pattern time slot."""


CarState = vehiclenode.VehicleState
"""The car's state, as the VehicleNode shows it (the API's enum; ``Offline`` is the operator's verdict)."""


class Basis(StrEnum):
    """Which signal a departure prediction rests on."""

    SEAT_OCCUPIED = "SeatOccupied"
    DOOR_AND_KEY = "DoorAndKey"
    DOOR_UNLOCKED = "DoorUnlocked"
    KEY_NEARBY = "KeyNearby"
    SCHEDULED_DEPARTURE = "ScheduledDeparture"
    CHARGE_COMPLETE = "ChargeComplete"
    LEARNED_PATTERN = "LearnedPattern"


def car_state(value: reading.Reading) -> CarState:
    """Driving if not in Park or moving (safety first); else Asleep, Charging or Parked."""
    if value.gear is not reading.Gear.PARK or value.speed_kph > 0:
        return CarState.DRIVING
    if value.asleep:
        return CarState.ASLEEP
    if value.charging:
        return CarState.CHARGING
    return CarState.PARKED


@dataclasses.dataclass(frozen=True, slots=True)
class Prediction:
    """When the car is expected to leave, how sure that is (0..1), and why."""

    at: datetime
    confidence: float
    basis: Basis


@dataclasses.dataclass(frozen=True)
class DepartureHistory:
    """Past departures in the car's local time zone, kept for ``max_age``.

    ``since`` is when the agent started watching: a weekday seen three times with one
    departure in a slot gives that slot a confidence of 1/3, not 1/1.
    """

    tz: tzinfo
    since: datetime
    departures: tuple[datetime, ...] = ()
    max_age: timedelta = timedelta(weeks=8)
    _slots: dict[int, list[tuple[int, int]]] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        minutes = int(SLOT.total_seconds() // 60)
        days: dict[tuple[int, int], set[date]] = {}
        for departed in self.departures:
            local = departed.astimezone(self.tz)
            key = (local.weekday(), (local.hour * 60 + local.minute) // minutes)
            days.setdefault(key, set()).add(local.date())
        slots: dict[int, list[tuple[int, int]]] = {}
        for (weekday, slot), seen in sorted(days.items()):
            slots.setdefault(weekday, []).append((slot, len(seen)))
        object.__setattr__(self, "_slots", slots)

    def with_departure(self, at: datetime) -> DepartureHistory:
        """A new history with ``at`` added and departures older than ``max_age`` dropped."""
        horizon = at - self.max_age
        kept = tuple(departed for departed in self.departures if departed >= horizon)
        since = max(self.since, horizon)
        return dataclasses.replace(self, since=since, departures=(*kept, at))

    def days_observed(self, weekday: int, *, until: date) -> int:
        """How many days with this weekday lie between ``since`` and ``until`` (inclusive)."""
        first = self.since.astimezone(self.tz).date()
        if until < first:
            return 0
        offset = (weekday - first.weekday()) % 7
        first_match = first + timedelta(days=offset)
        return 0 if first_match > until else (until - first_match).days // 7 + 1

    def slots(self, weekday: int) -> list[tuple[int, int]]:
        """(slot, on how many distinct days the car left in it) for a weekday, slots in order."""
        return self._slots.get(weekday, [])


def learned_departure(history: DepartureHistory, *, now: datetime, min_days: int = 2) -> Prediction | None:
    """The next time slot (from now, up to a week ahead) in which the car usually leaves.

    A slot qualifies when the car left in it on at least ``min_days`` distinct days; its
    confidence is the share of observed days of that weekday (complete days before today)
    with such a departure.
    """
    local_now = now.astimezone(history.tz)
    yesterday = local_now.date() - timedelta(days=1)
    for day_offset in range(8):
        day = local_now.date() + timedelta(days=day_offset)
        slots = history.slots(day.weekday())
        if not slots:
            continue
        observed = history.days_observed(day.weekday(), until=yesterday)
        if observed < min_days:
            continue
        for slot, count in slots:
            if count < min_days:
                continue
            start = datetime.combine(day, time(), tzinfo=history.tz) + slot * SLOT
            if start + SLOT <= local_now:
                continue
            at = max(start, local_now).astimezone(now.tzinfo)
            return Prediction(at=at, confidence=min(1.0, count / observed), basis=Basis.LEARNED_PATTERN)
    return None


_Imminent = tuple[Callable[[reading.Reading], bool], timedelta, float, Basis]
IMMINENT: tuple[_Imminent, ...] = (
    (lambda r: r.seat_occupied, timedelta(minutes=1), 0.95, Basis.SEAT_OCCUPIED),
    (lambda r: r.door_unlocked and r.key_nearby, timedelta(minutes=2), 0.9, Basis.DOOR_AND_KEY),
    (lambda r: r.door_unlocked, timedelta(minutes=3), 0.7, Basis.DOOR_UNLOCKED),
    (lambda r: r.key_nearby, timedelta(minutes=5), 0.6, Basis.KEY_NEARBY),
)
"""Door, key and seat signals: (predicate, time to departure, confidence, basis), strongest first."""

SCHEDULED_CONFIDENCE = 0.9
CHARGE_COMPLETE_CONFIDENCE = 0.3


def candidates(
    value: reading.Reading, history: DepartureHistory | None, *, now: datetime
) -> list[Prediction]:
    """Every departure guess the signals support, in no particular order."""
    found: list[Prediction] = []
    for applies, lead, confidence, basis in IMMINENT:
        if applies(value):
            found.append(Prediction(at=now + lead, confidence=confidence, basis=basis))
            break
    if value.scheduled_departure is not None and value.scheduled_departure >= now:
        found.append(
            Prediction(value.scheduled_departure, SCHEDULED_CONFIDENCE, Basis.SCHEDULED_DEPARTURE),
        )
    if value.charging and value.charge_complete_at is not None and value.charge_complete_at >= now:
        found.append(Prediction(value.charge_complete_at, CHARGE_COMPLETE_CONFIDENCE, Basis.CHARGE_COMPLETE))
    if history is not None:
        learned = learned_departure(history, now=now)
        if learned is not None:
            found.append(learned)
    return found


def predicted_departure(
    value: reading.Reading,
    history: DepartureHistory | None,
    *,
    now: datetime,
    min_confidence: float = 0.5,
) -> Prediction | None:
    """When the car will most likely leave; None while driving or with no signal at all.

    The earliest guess at least ``min_confidence`` sure wins (ties: the surer one); if no
    guess is that sure, the most confident one is returned, so a weak hint is still shown
    with its low confidence.
    """
    if car_state(value) is CarState.DRIVING:
        return None
    found = sorted(candidates(value, history, now=now), key=lambda p: (p.at, -p.confidence))
    if not found:
        return None
    for prediction in found:
        if prediction.confidence >= min_confidence:
            return prediction
    return max(found, key=lambda p: p.confidence)
