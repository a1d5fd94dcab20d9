"""The simulator's driver: only cars with news step, quiet cars only renew, vanished cars are silent."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from curbside_agent import agent, interlock, policy
from curbside_agent.signals import sources
from curbside_sim import driver, mobility

START = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
LEASE = 10.0


class Reporter:
    """Counts each car's writes."""

    def __init__(self, log: Counter[tuple[int, str]], index: int) -> None:
        self.log, self.index = log, index

    async def renew_lease(self) -> None:
        await asyncio.sleep(0)  # a real request suspends: other workers run meanwhile
        self.log[self.index, "renew"] += 1

    async def patch_status(self, patch: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        self.log[self.index, "patch"] += 1


class Wall:
    """A fake wall/monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _driver(
    *, cars: int, speed: float, flaky: float = 0.0, seed: int = 3
) -> tuple[driver.Driver, Counter[Any], Wall]:
    wall = Wall()
    clock = driver.SimClock(start=START, speed=speed, wall=wall)
    fleet = mobility.Fleet(cars=cars, seed=seed, start=START, flaky_share=flaky)
    log: Counter[tuple[int, str]] = Counter()
    fleet_cars = []
    for index in range(cars):
        source = sources.MemorySource()
        car = agent.Agent(
            signals=source,
            reporter=Reporter(log, index),
            owner_policy=policy.OwnerPolicy(),
            guard=interlock.Interlock(clock=wall),
            now=clock.now,
            monotonic=wall,
            lease_renew_seconds=LEASE,
        )
        fleet_cars.append(driver.Car(index=index, agent=car, source=source))
    return driver.Driver(fleet=fleet, cars=fleet_cars, clock=clock, monotonic=wall), log, wall


def test_clock_maps_simulated_time_back_to_wall_time() -> None:
    wall = Wall()
    clock = driver.SimClock(start=START, speed=600, wall=wall)
    assert clock.now() == START  # held until it begins
    clock.begin()
    wall.t += 2.5
    assert clock.now() == START + timedelta(seconds=1500)
    assert clock.wall_of(clock.now()) == pytest.approx(wall.t)
    manual = driver.SimClock(start=START, speed=0)
    manual.begin()
    assert manual.advance(10) == START + timedelta(seconds=10)
    assert manual.now() == START + timedelta(seconds=10)


def _writes(log: Counter[tuple[int, str]], kind: str) -> int:
    return sum(n for (_, what), n in log.items() if what == kind)


def test_warm_up_reports_every_car_and_staggers_first_renewals() -> None:
    run, log, wall = _driver(cars=20, speed=60)

    async def scenario() -> list[float | None]:
        await run.warm_up(lease_seconds=LEASE)
        assert _writes(log, "patch") == 20  # every car's first report
        dues = [car.due for car in run.cars]
        wall.t += LEASE
        await run.tick(run.clock.now())
        await run.drain()
        await run.close()
        return dues

    began = wall.t
    dues = asyncio.run(scenario())
    assert dues == pytest.approx([began + LEASE * i / 20 for i in range(20)])  # none renewed yet
    assert {index for (index, kind) in log if kind == "renew"} == set(range(20))
    assert _writes(log, "renew") == 20  # each car once: all were due a period after the start


def test_paced_warm_up_spreads_first_reports_and_renews_nothing_before_the_clock_starts() -> None:
    run, log, wall = _driver(cars=20, speed=60)

    async def scenario() -> float:
        began = time.monotonic()
        await run.warm_up(lease_seconds=LEASE, rate=50)  # 5 reports per 0.1 s batch: 4 batches
        took = time.monotonic() - began
        assert _writes(log, "patch") == 20
        assert _writes(log, "renew") == 0
        await run.close()
        return took

    assert asyncio.run(scenario()) >= 4 * driver.WARM_UP_TICK
    assert run.cars[0].due == pytest.approx(wall.t)  # staggered from the clock's start
    assert run.cars[10].due == pytest.approx(wall.t + LEASE / 2)


def test_quiet_cars_only_renew_once_per_period() -> None:
    run, log, wall = _driver(cars=30, speed=1)  # real time: a minute has next to no events

    async def scenario() -> tuple[int, int]:
        await run.warm_up(lease_seconds=LEASE)
        before = (_writes(log, "patch"), _writes(log, "renew"))
        for _ in range(60):  # 60 s of wall time in 1 s ticks (about three renewals due in each)
            wall.t += 1.0
            await run.tick(run.clock.now())
            await run.drain()
        await run.close()
        return before

    patches, renewals_before = asyncio.run(scenario())
    assert _writes(log, "renew") - renewals_before == pytest.approx(30 * 60 / LEASE, abs=30)
    assert max(n for (_, kind), n in log.items() if kind == "renew") <= 60 / LEASE + 1
    assert _writes(log, "patch") - patches <= run.totals.steps - 30
    assert (run.totals.renewals, run.totals.patches) == (_writes(log, "renew"), _writes(log, "patch"))


def test_only_cars_with_events_are_stepped() -> None:
    run, _, wall = _driver(cars=50, speed=3600)
    reference = mobility.Fleet(cars=50, seed=3, start=START, flaky_share=0.0)
    reference.advance(START)

    async def scenario() -> tuple[int, set[int]]:
        await run.warm_up(lease_seconds=LEASE)
        wall.t += 1.0  # one simulated hour
        before, target = run.totals.steps, run.clock.now()
        with_news = {event.car for event in reference.advance(target)}
        await run.tick(target)
        await run.drain()
        await run.close()
        return run.totals.steps - before, with_news

    stepped, with_news = asyncio.run(scenario())
    assert stepped == len(with_news) < 50


def test_news_for_a_busy_car_steps_it_again_afterwards() -> None:
    run, log, wall = _driver(cars=1, speed=0)
    (car,) = run.cars

    async def scenario() -> None:
        await run.warm_up(lease_seconds=LEASE)
        run._enqueue(car, driver.STEP)  # a step queued, not yet started: the car is busy
        await run.tick(run.clock.advance(86_400))  # a day of news arrives meanwhile
        assert car.again
        await run.drain()
        await run.close()

    asyncio.run(scenario())
    assert (car.busy, car.again) == (False, False)
    assert run.totals.steps == 3  # warm-up, the queued step, and once more for the news


def test_vanished_cars_go_silent_and_come_back() -> None:
    run, log, wall = _driver(cars=40, speed=0, flaky=1.0, seed=5)
    silent_writes = 0
    seen_silent: set[int] = set()
    came_back: set[int] = set()

    async def scenario() -> None:
        nonlocal silent_writes
        await run.warm_up(lease_seconds=LEASE)
        for _ in range(3 * 24 * 12):  # three simulated days in 5-minute steps, 4 s of wall time each
            wall.t += 4.0
            was = {car.index for car in run.cars if car.silent}
            before = {index: log[index, "renew"] + log[index, "patch"] for index in was}
            await run.tick(run.clock.advance(300))
            await run.drain()
            still = {car.index for car in run.cars if car.silent}
            silent_writes += sum(log[i, "renew"] + log[i, "patch"] - before[i] for i in was & still)
            seen_silent.update(still)
            came_back.update(was - still)
        await run.close()

    asyncio.run(scenario())
    assert seen_silent
    assert came_back
    assert silent_writes == 0
    assert run.states()["silent"] == sum(1 for car in run.cars if car.silent)
