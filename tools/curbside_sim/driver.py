"""Driving a simulated fleet's agents from mobility events on an accelerated clock.

Why this module exists: ten thousand agents in one process on two cores cannot each poll
their car ten times a second. They do not need to: the mobility model says exactly when a
car's signals change. So per tick the driver

1. advances the fleet to the simulated clock's "now" and hands each car with news its latest
   reading (a car with several changes in one tick is stepped once, with the last one);
2. fully steps only those cars (``Agent.step``: interlock, policy, status patch if changed);
3. renews the Leases that are due, and nothing else, for every other car
   (``Agent.heartbeat``), from a heap of due times, so a quiet car costs one Lease write per
   period and no CPU in between;
4. runs all of that concurrently, at most ``concurrency`` requests in flight.

A vanished car is silent: no steps, no renewals, exactly like a car whose modem died, until
it reappears. Lease periods are wall time (the operator's grace is wall time); the cars'
own clocks (``observedAt``, time windows, departures) are simulated time.

``SimClock`` maps the two: simulated = start + (wall − wall0) × speed, so a report's
``observedAt`` converts back to the wall moment it was observed (``wall_of``), which is how
the cluster tests measure visibility latency. Speed 0 means "as fast as possible": the
clock then advances a fixed simulated step per tick, whatever the wall clock does. A paced
clock (``paced``, from ``pace.schedule``) changes speed with the fleet's business and
maps both ways just as exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import math
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from curbside_agent import agent, state
from curbside_agent.signals import sources
from curbside_sim import mobility, pace


@dataclasses.dataclass
class SimClock:
    """Simulated time from wall time (``speed`` > 0), or advanced by hand (``speed`` == 0).

    With ``paced`` (a ``pace.Schedule``) the speed changes along it; ``speed`` is then only
    its fastest, and ``current_speed`` tells the speed now.
    """

    start: datetime
    speed: float
    wall: Callable[[], float] = time.time
    wall0: float = 0.0
    held: bool = True
    paced: pace.Schedule | None = None
    _manual: datetime | None = None

    @classmethod
    def from_anchor(cls, anchor: dict[str, object]) -> SimClock:
        """The clock that ``anchor()`` described (held, like any clock before ``begin``)."""
        start = datetime.fromisoformat(str(anchor["start"]))
        raw = anchor.get("paced")
        paced = pace.Schedule.from_json(raw) if isinstance(raw, list) else None
        return cls(
            start=start,
            speed=float(str(anchor["speed"])),
            wall0=float(str(anchor["wall0"])),
            paced=paced,
        )

    def begin(self) -> None:
        """Start simulated time: ``start`` is this wall moment (until then, ``now`` is ``start``)."""
        self.wall0 = self.wall()
        self.held = False
        self._manual = self.start

    def now(self) -> datetime:
        if self.held:
            return self.start
        if self.paced is not None:
            return self.start + timedelta(seconds=self.paced.sim_at(self.wall() - self.wall0))
        if self.speed > 0:
            return self.start + timedelta(seconds=(self.wall() - self.wall0) * self.speed)
        return self._manual or self.start

    def current_speed(self) -> float:
        if self.paced is not None and not self.held:
            return self.paced.speed_at(self.wall() - self.wall0)
        return self.speed

    def advance(self, seconds: float) -> datetime:
        """As-fast-as-possible mode: move simulated time on by ``seconds``."""
        self._manual = self.now() + timedelta(seconds=seconds)
        return self._manual

    def wall_of(self, moment: datetime) -> float:
        """The wall time (``time.time`` seconds) at which simulated ``moment`` was "now"."""
        offset = (moment - self.start).total_seconds()
        if self.paced is not None:
            return self.wall0 + self.paced.wall_at(offset)
        return self.wall0 + offset / self.speed

    def anchor(self) -> dict[str, object]:
        found: dict[str, object] = {"start": self.start.isoformat(), "speed": self.speed, "wall0": self.wall0}
        if self.paced is not None:
            found["paced"] = self.paced.as_json()
        return found


@dataclasses.dataclass(slots=True, eq=False)
class Car:
    """One simulated car: its agent, the memory source the driver feeds, and its bookkeeping.

    ``busy`` while a step or renewal of it is queued or running; ``again`` when news arrived
    meanwhile (it is stepped once more afterwards, so a car's reports never overtake each other).
    """

    index: int
    agent: agent.Agent
    source: sources.MemorySource
    silent: bool = False
    due: float | None = None
    busy: bool = False
    again: bool = False


@dataclasses.dataclass
class Totals:
    """What the driver did since it started (the summary line takes differences)."""

    events: int = 0
    steps: int = 0
    patches: int = 0
    renewals: int = 0
    ticks: int = 0
    lag_max: float = 0.0


STEP, RENEW = "step", "renew"
WARM_UP_TICK = 0.1
"""Seconds between the batches of a paced warm-up's first reports."""


@dataclasses.dataclass(eq=False)
class Driver:
    """Steps ``cars`` from ``fleet`` on ``clock``, ``concurrency`` requests at most (see the module doc)."""

    fleet: mobility.Fleet
    cars: list[Car]
    clock: SimClock
    concurrency: int = 64
    monotonic: Callable[[], float] = time.monotonic
    totals: Totals = dataclasses.field(default_factory=Totals)
    _heap: list[tuple[float, int]] = dataclasses.field(default_factory=list)
    _queue: asyncio.Queue[tuple[Car, str, float]] | None = None
    _workers: list[asyncio.Task[None]] = dataclasses.field(default_factory=list)

    # -- bookkeeping ---------------------------------------------------------------------
    def _schedule(self, car: Car) -> None:
        """Put the car's next renewal on the heap (once per due time; stale entries are skipped)."""
        due = car.agent.next_renewal()
        if not car.silent and due != car.due:
            car.due = due
            heapq.heappush(self._heap, (due, car.index))

    def _due(self, now: float) -> list[Car]:
        """Idle cars whose Lease renewal is due by ``now``. A popped car is off the heap until its
        work ends and ``_schedule`` puts it back (a busy car's step renews if due)."""
        found: list[Car] = []
        heap, cars = self._heap, self.cars
        while heap and heap[0][0] <= now:
            due, index = heapq.heappop(heap)
            car = cars[index]
            if due != car.due:
                continue  # superseded by a later entry
            car.due = None
            if not (car.silent or car.busy):
                found.append(car)
        return found

    def states(self) -> Counter[str]:
        """Cars by reported state, with ``silent`` for vanished ones."""
        counts: Counter[str] = Counter()
        for car in self.cars:
            counts["silent" if car.silent else (car.agent.car or state.CarState.OFFLINE).value] += 1
        return counts

    def eligible(self) -> int:
        return sum(1 for car in self.cars if car.agent.eligible and not car.silent)

    @property
    def backlog(self) -> int:
        """Steps and renewals queued, not yet started."""
        return 0 if self._queue is None else self._queue.qsize()

    # -- work ----------------------------------------------------------------------------
    def _enqueue(self, car: Car, kind: str) -> None:
        assert self._queue is not None, "start() first"
        car.busy = True
        self._queue.put_nowait((car, kind, self.monotonic()))

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            car, kind, queued = await self._queue.get()
            try:
                self.totals.lag_max = max(self.totals.lag_max, self.monotonic() - queued)
                if kind == STEP:
                    result = await car.agent.step()
                    self.totals.steps += 1
                    self.totals.patches += bool(result.patched)
                    self.totals.renewals += result.renewed
                else:
                    renewed = await car.agent.heartbeat()  # not `+= await`: that reads before awaiting
                    self.totals.renewals += renewed
            finally:
                car.busy = False
                if car.again and not car.silent:
                    car.again = False
                    self._enqueue(car, STEP)
                else:
                    self._schedule(car)
                self._queue.task_done()

    def start(self) -> None:
        """Start ``concurrency`` workers in the running loop (``warm_up`` does this)."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._workers = [asyncio.create_task(self._work()) for _ in range(self.concurrency)]

    async def drain(self) -> None:
        """Wait until every queued step and renewal is done."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers, self._queue = [], None

    def _apply(self, events: list[mobility.Event]) -> None:
        """Feed events to the cars' sources and queue a step for each car with news."""
        dirty: dict[int, Car] = {}
        for event in events:
            car = self.cars[event.car]
            if event.kind is mobility.Kind.VANISHED:
                car.silent = True
                car.again = False
                dirty.pop(event.car, None)
                continue
            car.silent = False
            car.source.update(event.reading)
            dirty[event.car] = car
        for car in dirty.values():
            if car.busy:
                car.again = True
            else:
                self._enqueue(car, STEP)
        self.totals.events += len(events)

    async def warm_up(self, *, lease_seconds: float, rate: float = 0.0) -> None:
        """Every car's first step at the simulated start; first renewals staggered over a period.

        The clock is held at ``start`` meanwhile and starts when every car has reported; the
        first renewals are staggered from that moment, so none is overdue when it starts. With
        ``rate`` (a paced run's changes per second) the first reports go out at about that
        rate, not all at once: a thousand reports in a burst leave the API server a backlog
        (its watchers' fan-out, the audit log) that the run's first seconds would inherit.
        """
        self.start()
        for car in self.cars:
            car.agent.defer_renewal(math.inf)  # no renewal during the warm-up: staggered below
        events = self.fleet.advance(self.clock.start)
        batch = max(1, round(rate * WARM_UP_TICK)) if rate > 0 else len(events) or 1
        for first in range(0, len(events), batch):
            self._apply(events[first : first + batch])
            if rate > 0:
                await asyncio.sleep(WARM_UP_TICK)
        await self.drain()
        began = self.monotonic()
        for car in self.cars:
            car.agent.defer_renewal(began + lease_seconds * car.index / max(1, len(self.cars)))
            self._schedule(car)
        self.clock.begin()

    async def tick(self, target: datetime) -> None:
        """Advance to simulated ``target``: queue steps for cars with news, renewals that are due.

        It does not wait for them (``drain`` does): at a fixed speed the clock does not wait either.
        """
        self._apply(self.fleet.advance(target))
        for car in self._due(self.monotonic()):
            self._enqueue(car, RENEW)
        self.totals.ticks += 1

    async def run(
        self,
        *,
        stop: asyncio.Event,
        until: datetime | None,
        tick_seconds: float,
        max_step_seconds: float,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """Tick until ``stop`` is set or simulated time reaches ``until``, then finish queued work.

        At a fixed speed a tick starts every ``tick_seconds`` of wall time; at speed 0 each tick
        advances ``max_step_seconds`` and waits for its work (so the clock never runs ahead).
        """
        self.start()
        while not stop.is_set():
            began = self.monotonic()
            target = self.clock.now() if self.clock.speed > 0 else self.clock.advance(max_step_seconds)
            if until is not None and target >= until:
                target = until
            await self.tick(target)
            if on_tick is not None:
                on_tick()
            if until is not None and target >= until:
                break
            if self.clock.speed <= 0:
                await self.drain()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), timeout=max(0.0, tick_seconds - (self.monotonic() - began))
                )
        await self.drain()
