"""The agent loop with a fake reporter: order of stop and report, no writes when nothing changed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from curbside_agent import agent, interlock, metrics, policy, state
from curbside_agent.signals import reading, sources

T0 = datetime(2025, 3, 7, 20, 0, tzinfo=UTC)
PARKED = reading.Reading(
    timestamp=T0,
    gear=reading.Gear.PARK,
    battery_percent=80.0,
    charging=True,
    charger_power_kw=11.0,
    network=reading.Network.UNMETERED,
)


class FakeReporter:
    """Records what the agent sends, in order, into a shared log; can be told to fail."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.patches: list[dict[str, Any]] = []
        self.renewals = 0
        self.fail_patches = 0

    async def renew_lease(self) -> None:
        self.renewals += 1
        self.log.append("renew")

    async def patch_status(self, patch: dict[str, Any]) -> None:
        if self.fail_patches:
            self.fail_patches -= 1
            raise agent.ReportError("API server unavailable") from ConnectionError("refused")
        self.patches.append(patch)
        self.log.append(f"patch {patch.get('state')}")


class Clocks:
    def __init__(self) -> None:
        self.wall = T0
        self.mono = 100.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def tick(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


class Car:
    """An agent wired to a memory source, a fake reporter and fake clocks."""

    def __init__(self, value: reading.Reading | None = PARKED, **rules: Any) -> None:
        self.log: list[str] = []
        self.clocks = Clocks()
        self.source = sources.MemorySource(value)
        self.reporter = FakeReporter(self.log)
        self.guard = interlock.Interlock(clock=self.clocks.monotonic, grace_seconds=1.0)
        self.agent = agent.Agent(
            signals=self.source,
            reporter=self.reporter,
            owner_policy=policy.OwnerPolicy(**rules),
            guard=self.guard,
            now=self.clocks.now,
            monotonic=self.clocks.monotonic,
            lease_renew_seconds=10.0,
        )

    def worker(self, name: str = "worker") -> None:
        self.guard.register(interlock.CallbackTarget(name, lambda: self.log.append(f"stop {name}")))

    def step(self, value: reading.Reading | None = None, *, after: float = 1.0) -> agent.StepResult:
        self.clocks.tick(after)
        if value is not None:
            self.source.update(value._replace(timestamp=self.clocks.wall))
        return asyncio.run(self.agent.step())


def test_an_unchanged_car_renews_its_lease_and_writes_nothing_else() -> None:
    car = Car()
    first = car.step()
    assert (first.car, first.eligibility.eligible, first.renewed) == (state.CarState.CHARGING, True, True)
    assert car.reporter.patches[0]["state"] == "Charging"
    for _ in range(59):
        car.step(after=1.0)
    assert len(car.reporter.patches) == 1
    assert car.reporter.renewals == 6  # 60 steps, one a second: at 1 s, then every 10 s up to 51 s


def test_driving_off_stops_work_before_reporting() -> None:
    car = Car()
    car.step()
    car.worker("triton")
    car.worker("worker")
    patches_before = metrics.REGISTRY.get_sample_value("curbside_agent_status_patches_total") or 0.0
    car.log.clear()
    result = car.step(PARKED._replace(gear=reading.Gear.DRIVE, speed_kph=12.0, charging=False))
    assert car.log == ["stop triton", "stop worker", "patch Driving"]
    assert result.stopped == 2
    assert result.eligibility.reasons[0] is policy.Reason.NOT_PARKED
    stops = car.guard.timeline.of(interlock.STOP_DELIVERED)
    (report,) = car.guard.timeline.of(interlock.REPORT_SENT)[-1:]
    assert all(stop.at <= report.at for stop in stops)
    assert car.guard.timeline.events.index(stops[-1]) < car.guard.timeline.events.index(report)
    assert car.agent.history is not None
    assert car.agent.history.departures == (car.clocks.wall,)
    assert metrics.REGISTRY.get_sample_value("curbside_agent_status_patches_total") == patches_before + 1


def test_parking_again_releases_the_interlock() -> None:
    car = Car()
    car.step()
    car.step(PARKED._replace(gear=reading.Gear.DRIVE, speed_kph=40.0))
    car.worker("too-early")
    assert "stop too-early" in car.log
    car.step(PARKED)
    car.worker("welcome")
    assert "stop welcome" not in car.log
    assert [target.name for target in car.guard.targets] == ["welcome"]


def test_a_sleeping_car_is_never_woken() -> None:
    car = Car()
    car.step()
    car.source.update(PARKED._replace(asleep=True, battery_percent=50.0))
    reads = car.source.full_reads
    results = [car.step() for _ in range(20)]
    assert car.source.wakes == 0
    assert car.source.full_reads == reads
    assert {result.car for result in results} == {state.CarState.ASLEEP}
    assert [patch["state"] for patch in car.reporter.patches] == ["Charging", "Asleep"]
    assert car.reporter.patches[-1].get("batteryPercent", 80) == 80  # nothing read while asleep


def test_lost_signals_stop_work_and_report_offline() -> None:
    car = Car()
    car.step()
    car.worker()
    car.log.clear()
    car.source.update(None)
    result = car.step()
    assert result.car is state.CarState.OFFLINE
    assert result.eligibility.reasons == (policy.Reason.OFFLINE,)
    assert car.log == ["stop worker", "patch Offline"]


def test_failed_patch_is_retried_on_the_next_step() -> None:
    car = Car()
    car.reporter.fail_patches = 1
    assert car.step().patched == ()
    assert car.reporter.patches == []
    assert "state" in car.step().patched
    assert car.step().patched == ()


@pytest.mark.parametrize(
    ("batteries", "want_eligible", "want_stops"),
    [
        ((80, 45, 35, 31), [True, True, True, True], 0),
        ((45, 55, 45, 29, 45), [False, True, True, False, False], 1),
    ],
    ids=["computing-continues-to-the-reserve", "starts-at-start-stops-below-reserve"],
)
def test_policy_hysteresis_in_the_loop(
    batteries: tuple[int, ...], want_eligible: list[bool], want_stops: int
) -> None:
    car = Car(PARKED._replace(battery_percent=batteries[0]))
    got = [car.step().eligibility.eligible]
    if got[0]:
        car.worker()
    for battery in batteries[1:]:
        verdict = car.step(PARKED._replace(battery_percent=battery)).eligibility.eligible
        if verdict and not car.guard.targets:
            car.worker()
        got.append(verdict)
    assert got == want_eligible
    assert car.log.count("stop worker") == want_stops


def test_run_polls_until_stopped() -> None:
    car = Car()
    stop = asyncio.Event()

    async def scenario() -> None:
        original = car.reporter.patch_status

        async def patch_then_stop(patch: dict[str, Any]) -> None:
            await original(patch)
            stop.set()

        car.reporter.patch_status = patch_then_stop  # type: ignore[method-assign]
        await asyncio.wait_for(car.agent.run(stop=stop, poll_seconds=0.0), timeout=5)

    asyncio.run(scenario())
    assert car.log[:2] == ["patch Charging", "renew"]
