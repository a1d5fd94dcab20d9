"""Each simulated car's habits, and its trips on a given day.

Why this module exists: the mobility model needs cars whose days look like real ones and a
way to produce any car's trips for any day without simulating the others. A car's fixed
habits come from a generator seeded with (seed, car); its trips on day ``d`` from one seeded
with (seed, car, day). Integer tuples hash the same in every Python process, so the traces
are reproducible across runs and machines.

Archetypes (share of the default mix):

- ``Commuter`` (40 %): home to work on weekdays around a habitual time (± a few minutes),
  back in the evening, sometimes an evening errand; plugs in at home when below its
  threshold, sometimes at work; many set a scheduled departure (preconditioning).
- ``NightCharger`` (20 %): daytime trips, plugs in at home every evening, schedules the next
  morning's departure.
- ``Errands`` (25 %): one to three short trips a day, charges at home when low, at a public
  fast charger if it has no home charger.
- ``Rare`` (15 %): a trip every week or so; otherwise parked and asleep (it plugs in only
  when nearly empty: a plugged-in car stays awake).

Independently, ``flaky`` cars (3 %) sometimes vanish: the gateway stops reporting for minutes
to hours, occasionally forever (see ``mobility``).
"""

from __future__ import annotations

import dataclasses
import random
from enum import StrEnum

from curbside_agent.signals import reading

DAY = 86_400.0
HOUR = 3_600.0
MINUTE = 60.0


class Archetype(StrEnum):
    COMMUTER = "Commuter"
    NIGHT_CHARGER = "NightCharger"
    ERRANDS = "Errands"
    RARE = "Rare"


class Place(StrEnum):
    HOME = "Home"
    WORK = "Work"
    SHOP = "Shop"


DEFAULT_MIX: dict[Archetype, float] = {
    Archetype.COMMUTER: 0.40,
    Archetype.NIGHT_CHARGER: 0.20,
    Archetype.ERRANDS: 0.25,
    Archetype.RARE: 0.15,
}
FLAKY_SHARE = 0.03


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    """A car's fixed habits. Times of day are seconds after local midnight."""

    index: int
    archetype: Archetype
    flaky: bool
    capacity_kwh: float
    kwh_per_km: float
    home_charger_kw: float
    work_charger_kw: float
    home_network: reading.Network
    work_network: reading.Network
    charge_limit: float
    plug_below: float
    leave_at: float
    return_at: float
    commute_km: float
    sleep_after: float
    schedules_departure: bool
    initial_battery: float

    @property
    def name(self) -> str:
        return car_name(self.index)


def car_name(index: int) -> str:
    """Car ``index``'s name: its Node's, VehicleNode's and Lease's (``car-00042``)."""
    return f"car-{index:05d}"


@dataclasses.dataclass(frozen=True, slots=True)
class Trip:
    """One drive: leaves at ``depart`` (simulation seconds), takes ``drive`` seconds."""

    depart: float
    drive: float
    km: float
    to: Place
    scheduled: float | None = None


def rng(*key: int) -> random.Random:
    """A generator seeded from integers only (stable across processes, unlike str hashes)."""
    return random.Random(hash(key))


def _pick(draw: random.Random, mix: dict[Archetype, float]) -> Archetype:
    roll = draw.random() * sum(mix.values())
    for archetype, weight in mix.items():
        roll -= weight
        if roll < 0:
            return archetype
    return next(reversed(mix))


def profile(
    seed: int, index: int, *, mix: dict[Archetype, float] | None = None, flaky_share: float = FLAKY_SHARE
) -> Profile:
    """Car ``index``'s habits for fleet ``seed`` (``flaky_share``: chance it sometimes vanishes)."""
    draw = rng(seed, index, -1)
    archetype = _pick(draw, mix or DEFAULT_MIX)
    has_home_charger = draw.random() < (0.6 if archetype is Archetype.ERRANDS else 0.9)
    night = archetype is Archetype.NIGHT_CHARGER
    rare = archetype is Archetype.RARE
    return Profile(
        index=index,
        archetype=archetype,
        flaky=draw.random() < flaky_share,
        capacity_kwh=draw.uniform(50, 100),
        kwh_per_km=draw.uniform(0.14, 0.22),
        home_charger_kw=draw.choice((7.4, 11.0)) if has_home_charger or night else 0.0,
        work_charger_kw=11.0 if archetype is Archetype.COMMUTER and draw.random() < 0.3 else 0.0,
        home_network=reading.Network.UNMETERED if draw.random() < 0.85 else reading.Network.METERED,
        work_network=reading.Network.UNMETERED if draw.random() < 0.4 else reading.Network.METERED,
        charge_limit=draw.choice((80.0, 90.0, 100.0)),
        plug_below=101.0 if night else draw.uniform(15, 30) if rare else draw.uniform(40, 80),
        leave_at=draw.uniform(6.5, 9.0) * HOUR if not night else draw.uniform(8.0, 10.5) * HOUR,
        return_at=draw.uniform(16.0, 18.5) * HOUR,
        commute_km=draw.uniform(4, 45),
        sleep_after=draw.uniform(15, 45) * MINUTE,
        schedules_departure=night or (archetype is Archetype.COMMUTER and draw.random() < 0.5),
        initial_battery=draw.uniform(35, 90),
    )


def _drive(draw: random.Random, km: float, kph: float) -> float:
    return km / kph * HOUR * draw.uniform(0.9, 1.3)


def _errands(draw: random.Random, *, start: float, end: float, count: int) -> list[Trip]:
    trips: list[Trip] = []
    at = start
    for _ in range(count):
        km = draw.uniform(2, 15)
        out = _drive(draw, km, 30)
        dwell = draw.uniform(15, 90) * MINUTE
        back = at + out + dwell
        home = back + _drive(draw, km, 30)
        if home > end:
            break
        trips += [Trip(at, out, km, Place.SHOP), Trip(back, home - back, km, Place.HOME)]
        at = home + draw.uniform(30, 150) * MINUTE
    return trips


def _commute(draw: random.Random, car: Profile, midnight: float) -> list[Trip]:
    leave = midnight + car.leave_at + draw.gauss(0, 8) * MINUTE
    out = _drive(draw, car.commute_km, 45)
    back = max(midnight + car.return_at + draw.gauss(0, 15) * MINUTE, leave + out + HOUR)
    home = _drive(draw, car.commute_km, 40)
    scheduled = midnight + car.leave_at if car.schedules_departure else None
    trips = [
        Trip(leave, out, car.commute_km, Place.WORK, scheduled),
        Trip(back, home, car.commute_km, Place.HOME),
    ]
    if draw.random() < 0.3:
        start = max(back + home + 30 * MINUTE, midnight + draw.uniform(19, 20) * HOUR)
        trips += _errands(draw, start=start, end=midnight + 23.5 * HOUR, count=1)
    return trips


def day_trips(car: Profile, *, seed: int, day: int, midnight: float, weekday: int) -> list[Trip]:
    """Car's trips on day ``day`` (local midnight at ``midnight`` simulation seconds), in order.

    Every trip starts and ends within the day, every stop lasts at least 15 minutes, and
    trips alternate so that the car always comes home by the end of the day.
    """
    draw = rng(seed, car.index, day)
    end = midnight + 23.5 * HOUR
    match car.archetype:
        case Archetype.COMMUTER if weekday < 5:
            return _commute(draw, car, midnight)
        case Archetype.NIGHT_CHARGER:
            first = midnight + car.leave_at + draw.gauss(0, 10) * MINUTE
            trips = _errands(draw, start=first, end=end, count=draw.randint(1, 3))
            if trips and car.schedules_departure:
                trips[0] = dataclasses.replace(trips[0], scheduled=midnight + car.leave_at)
            return trips
        case Archetype.RARE:
            if draw.random() >= 0.12:
                return []
            return _errands(draw, start=midnight + draw.uniform(10, 16) * HOUR, end=end, count=1)
        case _:
            start = midnight + draw.uniform(9, 11) * HOUR
            return _errands(draw, start=start, end=end, count=draw.randint(1, 3))


def vanishing(car: Profile, *, seed: int, day: int, midnight: float) -> tuple[float, float] | None:
    """A flaky car's silent episode starting on this day: (start, end); end may be infinite."""
    if not car.flaky:
        return None
    draw = rng(seed, car.index, day, 7)
    if draw.random() >= 0.25:
        return None
    start = midnight + draw.uniform(0, DAY)
    if draw.random() < 0.15:
        return start, float("inf")
    return start, start + min(12 * HOUR, max(5 * MINUTE, draw.expovariate(1 / (2 * HOUR))))
