"""A paced simulated clock: fast through a fleet's quiet nights, slower through its rush hours.

Why this module exists: at a fixed speed, what a simulated day costs in wall time is set by
its busiest hour (the API server must absorb the rush without queueing) while the night,
when nearly nothing happens, passes at the same slow speed. Several simulated days of 1,000
cars then take longer than a test can wait. The fleet's changes are known in advance (the
mobility model is deterministic for a seed), so ``schedule`` counts them per simulated
``bucket`` in a dry run of the same fleet and gives each bucket the speed at which it yields
about ``rate`` changes per wall second, between ``slowest`` and ``fastest``. The clock is then
piecewise linear: a ``Schedule`` of segments (``sim_at`` and ``wall_at`` convert both ways), so a
report's ``observedAt`` still maps back to the exact wall moment it was observed.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from curbside_sim import mobility


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """From ``sim`` simulated seconds (``wall`` wall seconds after the clock began) at ``speed``."""

    sim: float
    wall: float
    speed: float

    def as_json(self) -> dict[str, float]:
        return {"sim": self.sim, "wall": self.wall, "speed": self.speed}


def speeds(counts: Sequence[int], *, bucket: float, rate: float, slowest: float, fastest: float) -> Schedule:
    """One segment per bucket: the speed that spreads its ``counts`` changes at ``rate`` per second."""
    if rate <= 0 or bucket <= 0:
        raise ValueError(f"rate and bucket must be positive (got rate={rate}, bucket={bucket})")
    if not 0 < slowest <= fastest:
        raise ValueError(f"need 0 < slowest <= fastest (got {slowest}, {fastest})")
    segments: list[Segment] = []
    wall = 0.0
    for index, count in enumerate(counts):
        speed = min(fastest, max(slowest, rate * bucket / count)) if count else fastest
        if segments and segments[-1].speed == speed:
            wall += bucket / speed
            continue  # the same speed goes on: one segment
        segments.append(Segment(sim=index * bucket, wall=wall, speed=speed))
        wall += bucket / speed
    return Schedule(tuple(segments) or (Segment(0.0, 0.0, fastest),))


def schedule(
    make_fleet: Callable[[], mobility.Fleet],
    *,
    until: datetime,
    rate: float,
    bucket: timedelta = timedelta(minutes=2),
    slowest: float = 1.0,
    fastest: float = 3600.0,
) -> Schedule:
    """Count a fresh fleet's changes per ``bucket`` up to ``until`` and pace them at ``rate``/s."""
    fleet = make_fleet()
    fleet.advance(fleet.start)  # the initial readings: the warm-up reports them, unpaced
    step = bucket.total_seconds()
    counts: list[int] = []
    moment = fleet.start
    while moment < until:
        moment = min(until, moment + bucket)
        counts.append(len(fleet.advance(moment)))
    return speeds(counts, bucket=step, rate=rate, slowest=slowest, fastest=fastest)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Consecutive segments (the first at 0, 0); converts simulated and wall seconds both ways."""

    segments: tuple[Segment, ...]
    _walls: list[float] = dataclasses.field(init=False, repr=False, compare=False)
    _sims: list[float] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("a schedule needs at least one segment")
        object.__setattr__(self, "_walls", [s.wall for s in self.segments])
        object.__setattr__(self, "_sims", [s.sim for s in self.segments])

    def _at_wall(self, wall: float) -> Segment:
        return self.segments[max(0, bisect.bisect_right(self._walls, wall) - 1)]

    def sim_at(self, wall: float) -> float:
        """Simulated seconds since the start, ``wall`` seconds after the clock began."""
        segment = self._at_wall(wall)
        return segment.sim + (wall - segment.wall) * segment.speed

    def wall_at(self, sim: float) -> float:
        """Wall seconds after the clock began at which it read ``sim`` simulated seconds."""
        segment = self.segments[max(0, bisect.bisect_right(self._sims, sim) - 1)]
        return segment.wall + (sim - segment.sim) / segment.speed

    def speed_at(self, wall: float) -> float:
        """The clock's speed ``wall`` seconds after it began."""
        return self._at_wall(wall).speed

    @property
    def fastest(self) -> float:
        return max(s.speed for s in self.segments)

    def as_json(self) -> list[dict[str, float]]:
        return [s.as_json() for s in self.segments]

    @staticmethod
    def from_json(items: Sequence[dict[str, float]]) -> Schedule:
        return Schedule(
            tuple(Segment(sim=float(i["sim"]), wall=float(i["wall"]), speed=float(i["speed"])) for i in items)
        )
