"""Mobility traces for a whole fleet on an accelerated clock: ``Fleet.advance(to)`` -> events.

Why this module exists: the simulator must drive 10,000 cars through days of driving,
parking, charging and sleeping on a 2-core machine, faster than real time by orders of
magnitude. Ticking every car every simulated second would cost 10,000 × 86,400 steps a day;
instead each car is a generator of *changes* (a few dozen a day), and the fleet merges them
with a heap keyed on the next change. Cost is proportional to the number of changes, not to
cars × time, and ``advance`` over a quiet minute costs almost nothing.

What one car's trace contains (``profiles`` decides the trips):

- Before each departure: key nearby and the car wakes (5 min before), door unlocked and the
  charger unplugged (2 min), driver's seat occupied (1 min), then gear D.
- Driving: speed, metered cellular network, battery falling with distance.
- After arriving: gear P, the driver gets out (1 min), locks and leaves (2 min), the car joins
  the place's network, plugs in (3 min) if the owner would, and charges at the charger's
  power up to its charge limit (``chargeCompleteAt`` tells when). Scheduled departures
  (preconditioning) are set while parked at home.
- Parked unplugged for ``sleep_after``: the car falls asleep until the key comes near.
- Battery steps: a change event whenever the battery crosses ``battery_step_percent``.
- Flaky cars vanish (``Kind.VANISHED``, no reading) and reappear later in whatever state the
  car is in by then (the car kept driving while silent), or never.

A plugged-in car stays ``charging`` (the charger keeps supplying the car) until unplugged;
the battery stops rising at the limit. The simulation clock keeps the start time's UTC
offset (no DST jumps). Deterministic: same ``cars``, ``seed`` and ``start``, same events.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Iterator
from datetime import datetime, timezone
from enum import StrEnum
from typing import NamedTuple

from curbside_agent.signals import reading
from curbside_sim import profiles

MIN_BATTERY = 1.0
DRIVE_NETWORK = reading.Network.METERED
PUBLIC_CHARGER_KW = 50.0

Reading = reading.Reading
Point = tuple[float, Reading, float, float]
"""(simulation seconds, reading at that time, battery change in %/s, bound it stops at)."""


class Kind(StrEnum):
    CHANGED = "Changed"
    VANISHED = "Vanished"
    REAPPEARED = "Reappeared"


class Event(NamedTuple):
    """Car ``car`` changed at ``at``. ``reading`` is None exactly when it vanished."""

    at: datetime
    car: int
    kind: Kind
    reading: Reading | None


@dataclasses.dataclass(slots=True)
class _Now:
    """The mutable signal state a car's generator evolves; frozen into a Reading per point."""

    gear: reading.Gear = reading.Gear.PARK
    speed: float = 0.0
    charging: bool = False
    power: float = 0.0
    network: reading.Network = reading.Network.UNMETERED
    cabin: float = 20.0
    pack: float = 25.0
    soc: float = 40.0
    door: bool = False
    key: bool = False
    seat: bool = False
    scheduled: datetime | None = None
    complete: datetime | None = None
    asleep: bool = False


class _Car:
    """One car's trace generator."""

    def __init__(self, fleet: Fleet, car: profiles.Profile) -> None:
        self.fleet = fleet
        self.car = car
        self.now = _Now(network=car.home_network)
        self.battery = car.initial_battery
        self.points: list[Point] = []
        self.time = fleet.time

    def _emit(self, t: float, *, rate: float = 0.0, bound: float = 100.0) -> None:
        s = self.now
        # Positional, in field order: this runs for every point of every car (the hot path).
        value = Reading(
            self.time(t),
            s.gear,
            self.battery,
            s.speed,
            s.charging,
            s.power,
            s.network,
            s.cabin,
            s.pack,
            s.soc,
            s.door,
            s.key,
            s.seat,
            s.scheduled,
            s.complete,
            s.asleep,
        )
        self.points.append((t, value, rate, bound))

    def _advance_battery(self, until: float) -> None:
        """Move the battery along the last point's slope, adding step points on the way."""
        t0, value, rate, bound = self.points[-1]
        if rate == 0.0 or until <= t0:
            return
        step = self.fleet.battery_step
        b0 = value.battery_percent
        end = min(bound, b0 + rate * (until - t0)) if rate > 0 else max(bound, b0 + rate * (until - t0))
        if step > 0:
            levels = (
                range(math.floor(b0 / step) + 1, math.ceil(end / step))
                if rate > 0
                else range(math.ceil(b0 / step) - 1, math.floor(end / step), -1)
            )
            for level in levels:
                self.battery = level * step
                self._emit(t0 + (self.battery - b0) / rate, rate=rate, bound=bound)
        self.battery = end

    def _park(self, *, arrive: float, depart: float, place: profiles.Place, trip: profiles.Trip) -> None:
        car, s = self.car, self.now
        s.gear, s.speed, s.seat, s.key, s.door = reading.Gear.PARK, 0.0, True, True, False
        s.network = {
            profiles.Place.HOME: car.home_network,
            profiles.Place.WORK: car.work_network,
            profiles.Place.SHOP: reading.Network.METERED,
        }[place]
        s.cabin, s.pack, s.soc = self.fleet.ambient(car.index, arrive), 25.0, 40.0
        self._emit(arrive)
        s.seat, s.door = False, True
        self._emit(arrive + profiles.MINUTE)
        s.door, s.key = False, False
        self._emit(arrive + 2 * profiles.MINUTE)
        wake = depart - 5 * profiles.MINUTE
        if (
            place is profiles.Place.HOME
            and trip.scheduled is not None
            and depart - arrive > 4 * profiles.HOUR
        ):
            s.scheduled = self.fleet.time(trip.scheduled)
        power = self._charger(place)
        plugged_at = arrive + 3 * profiles.MINUTE
        if power > 0 and plugged_at < wake:
            rate = power / car.capacity_kwh * 100 / profiles.HOUR
            full = plugged_at + max(0.0, car.charge_limit - self.battery) / rate
            s.charging, s.power, s.pack = True, power, 33.0
            s.complete = self.fleet.time(full) if full < depart else None
            self._emit(plugged_at, rate=rate, bound=max(car.charge_limit, self.battery))
            if full < wake:
                self._advance_battery(full)
                s.complete = None
                self._emit(full)
            self._advance_battery(wake)
        elif arrive + 2 * profiles.MINUTE + car.sleep_after < wake:
            s.asleep = True
            self._emit(arrive + 2 * profiles.MINUTE + car.sleep_after)
        s.asleep, s.key = False, True
        self._emit(wake, rate=self.points[-1][2], bound=self.points[-1][3])
        self._advance_battery(depart - 2 * profiles.MINUTE)
        s.door, s.charging, s.power, s.complete, s.pack = True, False, 0.0, None, 25.0
        self._emit(depart - 2 * profiles.MINUTE)
        s.seat = True
        self._emit(depart - profiles.MINUTE)

    def _charger(self, place: profiles.Place) -> float:
        car = self.car
        if place is profiles.Place.HOME and self.battery < car.plug_below:
            return car.home_charger_kw
        if place is profiles.Place.WORK and self.battery < 80:
            return car.work_charger_kw
        if place is profiles.Place.SHOP and car.home_charger_kw == 0 and self.battery < 35:
            return PUBLIC_CHARGER_KW
        return 0.0

    def _drive(self, trip: profiles.Trip) -> None:
        s = self.now
        s.gear, s.speed, s.network, s.scheduled = (
            reading.Gear.DRIVE,
            round(trip.km / trip.drive * 3600, 1),
            DRIVE_NETWORK,
            None,
        )
        s.door, s.cabin, s.soc = False, 21.0, 60.0
        used = trip.km * self.car.kwh_per_km / self.car.capacity_kwh * 100
        self._emit(trip.depart, rate=-used / trip.drive, bound=MIN_BATTERY)
        self._advance_battery(trip.depart + trip.drive)

    def trace(self) -> Iterator[Point]:
        """Every point of this car's trace, forever, in time order (from simulation time 0)."""
        place, arrive, day = profiles.Place.HOME, -profiles.HOUR, 0
        pending: list[profiles.Trip] = []
        while True:
            while not pending:
                pending = self.fleet.trips(self.car, day)
                day += 1
            trip = pending.pop(0)
            depart = max(trip.depart, arrive + 10 * profiles.MINUTE)
            trip = dataclasses.replace(trip, depart=depart)
            self._park(arrive=arrive, depart=depart, place=place, trip=trip)
            self._drive(trip)
            yield from self._flush()
            place, arrive = trip.to, trip.depart + trip.drive

    def _flush(self) -> Iterator[Point]:
        ready, self.points = self.points, []
        yield from ready


def at(point: Point, t: float, *, timestamp: datetime) -> reading.Reading:
    """The reading ``point`` implies at a later time ``t`` (battery moved along its slope)."""
    t0, value, rate, bound = point
    battery = value.battery_percent + rate * (t - t0)
    battery = min(bound, battery) if rate > 0 else max(bound, battery) if rate < 0 else battery
    return value._replace(timestamp=timestamp, battery_percent=battery)


_Entry = tuple[float, int, Kind, Point | None]
"""A heap entry: (time, car, kind, point); (time, car) is unique, so points are never compared."""


class Fleet:
    """``cars`` simulated cars from ``start`` on, for fleet ``seed``. See the module docstring.

    ``advance(to)`` returns every change up to ``to`` in time order (ties by car index); the
    first call returns each car's initial reading at ``start``. ``current(car)`` is the car's
    reading at the fleet's current time (None while it is vanished).
    """

    def __init__(
        self,
        *,
        cars: int,
        seed: int,
        start: datetime,
        battery_step_percent: float = 1.0,
        mix: dict[profiles.Archetype, float] | None = None,
        flaky_share: float = profiles.FLAKY_SHARE,
    ) -> None:
        offset = start.utcoffset()
        if offset is None:
            raise ValueError("start must be timezone-aware")
        self.start = start
        self.seed = seed
        self.battery_step = battery_step_percent
        self._tz = timezone(offset)
        self._epoch = start.timestamp()
        local = start.astimezone(self._tz)
        self._midnight0 = (
            -float(local.hour * 3600 + local.minute * 60 + local.second) - local.microsecond / 1e6
        )
        self._weekday0 = local.weekday()
        self._now = 0.0
        self.profiles = tuple(
            profiles.profile(seed, index, mix=mix, flaky_share=flaky_share) for index in range(cars)
        )
        self._current: list[Point | None] = [None] * cars
        self._streams = [self._stream(_Car(self, car)) for car in self.profiles]
        self._heap: list[_Entry] = []
        for index, stream in enumerate(self._streams):
            t, kind, point = next(stream)
            self._heap.append((t, index, kind, point))
        heapq.heapify(self._heap)

    @property
    def now(self) -> datetime:
        return self.time(self._now)

    def time(self, t: float) -> datetime:
        """Simulation seconds to a timestamp in the start's UTC offset."""
        return datetime.fromtimestamp(self._epoch + t, self._tz)

    def ambient(self, index: int, t: float) -> float:
        """The car's outside temperature on the day of ``t`` (10-35 °C, stable for the day)."""
        day = int((t - self._midnight0) // profiles.DAY)
        return 10.0 + (hash((self.seed, index, day, 3)) % 2500) / 100

    def trips(self, car: profiles.Profile, day: int) -> list[profiles.Trip]:
        """The car's trips on day ``day`` (day 0 holds ``start``; trips before it are dropped)."""
        trips = profiles.day_trips(
            car,
            seed=self.seed,
            day=day,
            midnight=self._midnight0 + day * profiles.DAY,
            weekday=(self._weekday0 + day) % 7,
        )
        return [trip for trip in trips if trip.depart >= 10 * profiles.MINUTE] if day == 0 else trips

    def _episodes(self, car: profiles.Profile, *, after: float) -> tuple[float, float] | None:
        if not car.flaky:
            return None
        day = max(0, int((after - self._midnight0) // profiles.DAY))
        while True:
            found = profiles.vanishing(
                car, seed=self.seed, day=day, midnight=self._midnight0 + day * profiles.DAY
            )
            if found is not None and found[0] > after:
                return found
            day += 1

    def _retimed(self, point: Point, t: float) -> Point:
        return (t, at(point, t, timestamp=self.time(t)), point[2], point[3])

    def _stream(self, track: _Car) -> Iterator[tuple[float, Kind, Point | None]]:
        """One car's events: its trace clipped to t >= 0, with silent episodes cut out."""
        episode = self._episodes(track.car, after=0.0)
        last: Point | None = None
        started = False
        trace = track.trace()
        for point in trace:
            t = point[0]
            if t < 0:
                last = point
                continue
            if not started:
                started = True
                if t > 0 and last is not None:
                    yield 0.0, Kind.CHANGED, self._retimed(last, 0.0)
            while episode is not None and episode[0] <= t:
                start, end = episode
                yield start, Kind.VANISHED, None
                if math.isinf(end):
                    return
                while t < end:
                    last, point = point, next(trace)
                    t = point[0]
                assert last is not None  # a point before the episode was yielded
                yield end, Kind.REAPPEARED, self._retimed(last, end)
                episode = self._episodes(track.car, after=end)
            yield t, Kind.CHANGED, point
            last = point

    def advance(self, to: datetime) -> list[Event]:
        """Every change after the previous call up to and including ``to``, in time order."""
        limit = (to - self.start).total_seconds()
        heap, streams, current = self._heap, self._streams, self._current
        events: list[Event] = []
        while heap and heap[0][0] <= limit:
            t, index, kind, point = heap[0]
            current[index] = point
            if point is None:
                events.append(Event(at=self.time(t), car=index, kind=kind, reading=None))
            else:
                events.append(Event(at=point[1].timestamp, car=index, kind=kind, reading=point[1]))
            following = next(streams[index], None)
            if following is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (following[0], index, following[1], following[2]))
        self._now = max(self._now, limit)
        return events

    def current(self, car: int) -> Reading | None:
        """Car ``car``'s reading at the fleet's current time; None before the first advance or when silent."""
        point = self._current[car]
        return None if point is None else at(point, self._now, timestamp=self.time(self._now))
