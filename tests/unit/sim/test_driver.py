"""The simulator's driver: only cars with news step, quiet cars only renew, vanished cars are silent."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from curbside_agent import agent, interlock, policy
from curbside_agent.signals import sources
from curbside_agent.sim import driver, mobility

START = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
LEASE = 10.0


class Reporter:
    """Counts each car's writes."""

    def __init__(self, log: Counter[tuple[int, str]], index: int) -> None:
        self.log, self.index = log, index

    async def renew_lease(self) -> None:
        self.log[self.index, "renew"] += 1

    async def patch_status(self, patch: dict[str, Any]) -> None:
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


def test_warm_up_reports_every_car_and_staggers_first_renewals() -> None:
    run, log, wall = _driver(cars=20, speed=60)
    asyncio.run(run.warm_up(lease_seconds=LEASE))
    assert sum(n for (_, kind), n in log.items() if kind == "patch") == 20
    assert sum(n for (_, kind), n in log.items() if kind == "renew") == 1  # car 0 is due at once
    want = [wall.t + LEASE] + [wall.t + LEASE * i / 20 for i in range(1, 20)]  # car 0 renewed already
    assert [car.due for car in run.cars] == pytest.approx(want)
    wall.t += LEASE
    asyncio.run(run.tick(run.clock.now()))
    assert {index for (index, kind) in log if kind == "renew"} == set(range(20))


def test_quiet_cars_only_renew_once_per_period() -> None:
    run, log, wall = _driver(cars=30, speed=1)  # real time: a minute has next to no events
    asyncio.run(run.warm_up(lease_seconds=LEASE))
    patches = sum(n for (_, kind), n in log.items() if kind == "patch")
    renewals_before = sum(n for (_, kind), n in log.items() if kind == "renew")
    for _ in range(600):  # 60 s of wall time in 0.1 s ticks
        wall.t += 0.1
        asyncio.run(run.tick(run.clock.now()))
    renewals = sum(n for (_, kind), n in log.items() if kind == "renew") - renewals_before
    assert renewals == pytest.approx(30 * 60 / LEASE, abs=30)
    assert max(n for (_, kind), n in log.items() if kind == "renew") <= 60 / LEASE + 1
    stepped = run.totals.steps - 30
    assert sum(n for (_, kind), n in log.items() if kind == "patch") - patches <= stepped


def test_only_cars_with_events_are_stepped() -> None:
    run, _, wall = _driver(cars=50, speed=3600)
    asyncio.run(run.warm_up(lease_seconds=LEASE))
    wall.t += 1.0  # one simulated hour
    before = run.totals.steps
    target = run.clock.now()
    reference = mobility.Fleet(cars=50, seed=3, start=START, flaky_share=0.0)
    reference.advance(START)
    with_news = {event.car for event in reference.advance(target)}
    asyncio.run(run.tick(target))
    assert run.totals.steps - before == len(with_news) < 50


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
            still = {car.index for car in run.cars if car.silent}
            silent_writes += sum(log[i, "renew"] + log[i, "patch"] - before[i] for i in was & still)
            seen_silent.update(still)
            came_back.update(was - still)

    asyncio.run(scenario())
    assert seen_silent
    assert came_back
    assert silent_writes == 0
    assert run.states()["silent"] == sum(1 for car in run.cars if car.silent)
