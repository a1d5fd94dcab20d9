"""Owner policy: hysteresis, charging, network, heat, time windows, energy budget, departures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from curbside_agent import policy, state
from curbside_agent.signals import reading

NOW = datetime(2025, 3, 7, 12, 0, tzinfo=UTC)  # a Friday
R = policy.Reason
S = state.CarState
BASE = policy.OwnerPolicy(start_battery_percent=50, reserve_battery_percent=30)


def _r(**changes: Any) -> reading.Reading:
    base = reading.Reading(
        timestamp=NOW,
        gear=reading.Gear.PARK,
        battery_percent=80.0,
        charging=True,
        charger_power_kw=11.0,
        network=reading.Network.UNMETERED,
        cabin_celsius=20.0,
        soc_celsius=50.0,
        pack_celsius=25.0,
    )
    return base._replace(**changes)


def _eval(
    value: reading.Reading | None,
    *,
    rules: policy.OwnerPolicy = BASE,
    car: state.CarState | None = None,
    computing: bool = False,
    departure: state.Prediction | None = None,
    energy: float = 0.0,
    now: datetime = NOW,
) -> policy.Eligibility:
    if car is None:
        car = S.PARKED if value is None else state.car_state(value)
    return policy.evaluate(
        rules, car=car, value=value, computing=computing, departure=departure, energy_used_kwh=energy, now=now
    )


def _soon(minutes: float, confidence: float = 0.9) -> state.Prediction:
    return state.Prediction(NOW + timedelta(minutes=minutes), confidence, state.Basis.SCHEDULED_DEPARTURE)


@pytest.mark.parametrize(
    ("battery", "computing", "want"),
    [
        (80, False, ()),
        (50, False, ()),
        (49.9, False, (R.BATTERY_LOW,)),
        (40, False, (R.BATTERY_LOW,)),
        (40, True, ()),
        (30, True, ()),
        (29.9, True, (R.BATTERY_LOW,)),
        (10, False, (R.BATTERY_LOW,)),
    ],
    ids=[
        "full",
        "at-start-threshold-starts",
        "just-below-start-does-not-start",
        "between-thresholds-idle-stays-idle",
        "between-thresholds-computing-keeps-going",
        "at-reserve-keeps-going",
        "below-reserve-stops",
        "far-below",
    ],
)
def test_battery_hysteresis(battery: float, computing: bool, want: tuple[policy.Reason, ...]) -> None:
    assert _eval(_r(battery_percent=battery), computing=computing).reasons == want


@pytest.mark.parametrize(
    ("value", "kwargs", "want"),
    [
        (_r(), {}, ()),
        (_r(gear=reading.Gear.DRIVE, speed_kph=50, charging=False), {}, (R.NOT_PARKED,)),
        (_r(asleep=True), {}, (R.ASLEEP,)),
        (None, {}, (R.OFFLINE,)),
        (_r(), {"car": S.OFFLINE}, (R.OFFLINE,)),
        (_r(charging=False), {"rules": policy.OwnerPolicy(require_charging=True)}, (R.NOT_CHARGING,)),
        (_r(charging=False), {}, ()),
        (_r(network=reading.Network.METERED), {}, (R.METERED_NETWORK,)),
        (
            _r(network=reading.Network.METERED),
            {"rules": policy.OwnerPolicy(require_unmetered_network=False)},
            (),
        ),
        (_r(network=reading.Network.NONE), {}, (R.NO_NETWORK,)),
        (_r(soc_celsius=86.0), {"computing": True}, (R.TOO_HOT,)),
        (_r(soc_celsius=84.0), {"computing": True}, ()),
        (_r(soc_celsius=84.0), {}, (R.TOO_HOT,)),
        (_r(cabin_celsius=46.0), {}, (R.TOO_HOT,)),
        (_r(pack_celsius=60.0), {"rules": policy.OwnerPolicy(max_pack_celsius=45)}, (R.TOO_HOT,)),
        (
            _r(),
            {"energy": 5.0, "rules": policy.OwnerPolicy(energy_budget_kwh_per_day=5)},
            (R.ENERGY_BUDGET_SPENT,),
        ),
        (_r(), {"energy": 4.9, "rules": policy.OwnerPolicy(energy_budget_kwh_per_day=5)}, ()),
        (_r(), {"departure": _soon(5)}, (R.DEPARTING_SOON,)),
        (_r(), {"departure": _soon(5, confidence=0.3)}, ()),
        (_r(), {"departure": _soon(11)}, ()),
        (
            _r(gear=reading.Gear.DRIVE, battery_percent=10, network=reading.Network.METERED, charging=False),
            {"rules": policy.OwnerPolicy(require_charging=True)},
            (R.NOT_PARKED, R.BATTERY_LOW, R.NOT_CHARGING, R.METERED_NETWORK),
        ),
    ],
    ids=[
        "all-clear",
        "driving",
        "asleep",
        "no-reading-is-offline",
        "signals-lost-is-offline",
        "charging-required",
        "charging-not-required",
        "metered",
        "metered-allowed",
        "no-network",
        "soc-over-limit",
        "soc-under-limit-while-computing",
        "soc-within-restart-margin-while-idle",
        "cabin-over-limit",
        "pack-limit-when-set",
        "energy-budget-spent",
        "energy-budget-left",
        "departing-before-a-unit-could-finish",
        "unsure-departure-ignored",
        "departure-after-a-unit",
        "every-reason-most-important-first",
    ],
)
def test_reasons(
    value: reading.Reading | None, kwargs: dict[str, Any], want: tuple[policy.Reason, ...]
) -> None:
    verdict = _eval(value, **kwargs)
    assert verdict.reasons == want
    assert verdict.eligible is (not want)
    assert len(verdict.notes) == len(want)


@pytest.mark.parametrize(
    ("window", "local", "want"),
    [
        (policy.TimeWindow(9 * 60, 17 * 60), datetime(2025, 3, 7, 9, 0), True),
        (policy.TimeWindow(9 * 60, 17 * 60), datetime(2025, 3, 7, 17, 0), False),
        (policy.TimeWindow(22 * 60, 6 * 60), datetime(2025, 3, 7, 23, 30), True),
        (policy.TimeWindow(22 * 60, 6 * 60), datetime(2025, 3, 8, 5, 59), True),
        (policy.TimeWindow(22 * 60, 6 * 60), datetime(2025, 3, 8, 6, 0), False),
        (policy.TimeWindow(22 * 60, 6 * 60), datetime(2025, 3, 7, 12, 0), False),
        (policy.TimeWindow(22 * 60, 6 * 60, frozenset({4})), datetime(2025, 3, 8, 5, 0), True),
        (policy.TimeWindow(22 * 60, 6 * 60, frozenset({4})), datetime(2025, 3, 7, 5, 0), False),
        (policy.TimeWindow(0, 24 * 60, frozenset({5, 6})), datetime(2025, 3, 8, 23, 59), True),
        (policy.TimeWindow(0, 24 * 60, frozenset({5, 6})), datetime(2025, 3, 7, 23, 59), False),
    ],
    ids=[
        "day-window-start-inclusive",
        "day-window-end-exclusive",
        "night-window-before-midnight",
        "night-window-after-midnight",
        "night-window-end-exclusive",
        "night-window-midday",
        "friday-night-window-holds-saturday-morning",
        "friday-night-window-not-thursday-night",
        "weekend-all-day-until-2400",
        "weekend-window-not-friday",
    ],
)
def test_time_windows(window: policy.TimeWindow, local: datetime, want: bool) -> None:
    assert window.contains(local) is want


def test_time_windows_use_the_owner_time_zone() -> None:
    berlin_night = policy.OwnerPolicy(
        time_windows=(policy.TimeWindow(22 * 60, 6 * 60),), tz=timezone(timedelta(hours=1))
    )
    at_2130_utc = NOW.replace(hour=21, minute=30)  # 22:30 in UTC+1
    assert _eval(_r(), rules=berlin_night, now=at_2130_utc).eligible
    assert _eval(_r(), rules=berlin_night, now=NOW).reasons == (R.OUTSIDE_TIME_WINDOW,)


def test_energy_meter_resets_at_local_midnight() -> None:
    tz = timezone(timedelta(hours=2))
    meter = policy.EnergyMeter().record(1.5, at=NOW, tz=tz).record(1.0, at=NOW, tz=tz)
    assert meter.used_on(now=NOW, tz=tz) == 2.5
    after_midnight = datetime(2025, 3, 7, 22, 30, tzinfo=UTC)  # 00:30 next day at UTC+2
    assert meter.used_on(now=after_midnight, tz=tz) == 0.0
    assert meter.record(0.5, at=after_midnight, tz=tz).used_kwh == 0.5


@pytest.mark.parametrize(
    "kwargs",
    [{"start_battery_percent": 30, "reserve_battery_percent": 40}, {"temperature_hysteresis_celsius": -1}],
    ids=["reserve-above-start", "negative-hysteresis"],
)
def test_inconsistent_policy_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        policy.OwnerPolicy(**kwargs)


def test_flapping_battery_does_not_flap_eligibility() -> None:
    """A battery wobbling between 45 and 55 % while computing: started once, never stopped."""
    computing = False
    flips = 0
    for battery in (55, 48, 52, 45, 51, 46, 55, 44):
        verdict = _eval(_r(battery_percent=battery), computing=computing)
        flips += verdict.eligible != computing
        computing = verdict.eligible
    assert (flips, computing) == (1, True)
