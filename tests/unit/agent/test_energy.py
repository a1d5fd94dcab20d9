"""The owner's daily energy budget, fed by the car's energy counter (reading ``energyUsedKwh``)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from curbside_agent import policy
from curbside_agent.signals import reading, sources
from tests.unit.agent.test_agent import PARKED, Car

BERLIN = ZoneInfo("Europe/Berlin")


def at_counter(kwh: float) -> reading.Reading:
    return PARKED._replace(energy_used_kwh=kwh)


def test_the_counter_gives_what_it_grew_by_and_a_drop_is_a_restart() -> None:
    counter = policy.EnergyCounter()
    counter, used = counter.advance(40.0)
    assert used == 0.0  # the first value is a baseline: nothing is known of before
    counter, used = counter.advance(41.5)
    assert used == pytest.approx(1.5)
    counter, used = counter.advance(41.5)
    assert used == 0.0
    counter, used = counter.advance(0.25)  # rebooted: the counter began again at zero
    assert used == pytest.approx(0.25)
    assert counter.last_kwh == 0.25


def test_a_car_over_its_daily_budget_stops_and_the_budget_resets_the_next_local_day() -> None:
    car = Car(at_counter(100.0), energy_budget_kwh_per_day=2.0, tz=BERLIN)

    def until(hour: int, minute: int) -> float:  # seconds from the car's clock to hh:mm UTC that day
        return (car.clocks.wall.replace(hour=hour, minute=minute, second=0) - car.clocks.wall).total_seconds()

    # T0 is 20:00 UTC, 21:00 in Berlin: the owner's day ends at 23:00 UTC.
    car.worker("triton")
    assert car.step().eligibility.eligible
    for kwh in (100.8, 101.6):
        result = car.step(at_counter(kwh), after=600)
        assert result.eligibility.eligible
    result = car.step(at_counter(102.1), after=600)
    assert not result.eligibility.eligible
    assert result.eligibility.reasons == (policy.Reason.ENERGY_BUDGET_SPENT,)
    assert "stop triton" in car.log
    assert car.reporter.patches[-1]["energyUsedTodayKwh"] == pytest.approx(2.1)
    # 23:50 in Berlin (22:50 UTC): the budget stays spent.
    assert not car.step(at_counter(102.2), after=until(22, 50)).eligibility.eligible
    # 00:10 in Berlin, still 23:10 UTC on the same UTC day: a new local day, a fresh budget.
    result = car.step(at_counter(102.3), after=until(23, 10))
    assert car.clocks.wall.date() == datetime(2025, 3, 7).date()
    assert result.eligibility.eligible
    assert car.agent.energy.used_on(now=car.clocks.wall, tz=BERLIN) == pytest.approx(0.1)
    assert car.reporter.patches[-1]["energyUsedTodayKwh"] == pytest.approx(0.1)


def test_a_counter_that_goes_backwards_is_not_negative_energy() -> None:
    car = Car(at_counter(5.0), energy_budget_kwh_per_day=2.0)
    car.step()
    car.step(at_counter(6.5))
    result = car.step(at_counter(0.3))  # the computer rebooted
    used = car.agent.energy.used_on(now=car.clocks.wall, tz=car.agent.policy.tz)
    assert used == pytest.approx(1.8)
    assert result.eligibility.eligible
    assert not car.step(at_counter(0.6)).eligibility.eligible  # 2.1 kWh today


def test_a_sleeping_or_unreadable_car_counts_nothing() -> None:
    car = Car(at_counter(5.0), energy_budget_kwh_per_day=2.0)
    car.step()
    car.source.update(at_counter(50.0)._replace(asleep=True))
    car.step()
    car.source.update(None)
    car.step()
    assert car.agent.energy.used_on(now=car.clocks.wall, tz=car.agent.policy.tz) == 0.0
    car.step(at_counter(5.5))
    assert car.agent.energy.used_on(now=car.clocks.wall, tz=car.agent.policy.tz) == pytest.approx(0.5)


def test_a_restarted_agent_carries_on_with_todays_reported_energy() -> None:
    car = Car(at_counter(9.0), energy_budget_kwh_per_day=2.0, tz=BERLIN)
    observed = (car.clocks.wall - timedelta(hours=1)).isoformat()
    car.agent.resume({"state": "Charging", "energyUsedTodayKwh": 1.5, "observedAt": observed})
    assert car.step().eligibility.eligible
    result = car.step(at_counter(9.6))
    assert result.eligibility.reasons == (policy.Reason.ENERGY_BUDGET_SPENT,)


def test_a_report_from_an_earlier_local_day_does_not_count_today() -> None:
    car = Car(at_counter(9.0), energy_budget_kwh_per_day=2.0, tz=BERLIN)
    yesterday = datetime(2025, 3, 6, 22, 0, tzinfo=BERLIN).isoformat()
    car.agent.resume({"energyUsedTodayKwh": 5.0, "observedAt": yesterday})
    assert car.step().eligibility.eligible


def test_the_memory_source_plays_the_computers_counter() -> None:
    source = sources.MemorySource(PARKED)
    car = Car(energy_budget_kwh_per_day=1.0)
    car.agent.signals = source
    car.step()
    source.use_energy(0.75)
    assert car.step().eligibility.eligible
    source.reboot()
    source.use_energy(0.5)  # 0.5 since the reboot: 1.25 today
    assert car.step().eligibility.reasons == (policy.Reason.ENERGY_BUDGET_SPENT,)
    with pytest.raises(ValueError, match="negative"):
        source.use_energy(-1.0)
    gateway = sources.MemorySource(at_counter(3.0))
    gateway.use_energy(9.0)  # a reading's own counter wins
    assert asyncio.run(gateway.read()).energy_used_kwh == 3.0


def test_the_counter_is_part_of_the_json_contract() -> None:
    doc = at_counter(12.5).to_json()
    assert doc["energyUsedKwh"] == 12.5
    assert reading.parse_reading(doc).energy_used_kwh == 12.5
    with pytest.raises(reading.ReadingError, match="energyUsedKwh"):
        reading.parse_reading({**doc, "energyUsedKwh": -1})
