"""The owner-policy rule book, judged from a reported status as the operator does: one table per rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from curbside_api import policy
from curbside_api.v1alpha1 import vehiclenode

NOW = datetime(2025, 3, 7, 12, 0, tzinfo=UTC)  # a Friday
R = policy.Reason
SPEC = vehiclenode.OwnerPolicy()  # start 50 %, reserve 30 %, unmetered, SoC 85 °C, cabin 45 °C
ALL_CLEAR: dict[str, Any] = {
    "state": "Charging",
    "batteryPercent": 80,
    "charging": True,
    "chargerPowerKw": 11.0,
    "network": "Unmetered",
    "thermal": {"cabinCelsius": 20, "socCelsius": 50, "packCelsius": 25},
    "observedAt": "2025-03-07T11:59:00.123456Z",
}


def _status(**changes: Any) -> vehiclenode.VehicleNodeStatus:
    body = {**ALL_CLEAR, **changes}
    return vehiclenode.VehicleNodeStatus.model_validate({k: v for k, v in body.items() if v is not None})


def _spec(**fields: Any) -> vehiclenode.OwnerPolicy:
    return vehiclenode.OwnerPolicy.model_validate(fields)


def _judge(
    status: vehiclenode.VehicleNodeStatus,
    *,
    spec: vehiclenode.OwnerPolicy = SPEC,
    computing: bool = False,
    now: datetime = NOW,
    unit: float = 600.0,
) -> policy.Eligibility:
    return policy.evaluate_status(spec, status, computing=computing, now=now, expected_unit_seconds=unit)


def _leaving(minutes: float, confidence: float = 0.9) -> dict[str, Any]:
    return {"time": (NOW + timedelta(minutes=minutes)).isoformat(), "confidence": confidence}


@pytest.mark.parametrize(
    ("battery", "computing", "want"),
    [
        (80, False, ()),
        (50, False, ()),
        (49, False, (R.BATTERY_LOW,)),
        (40, False, (R.BATTERY_LOW,)),
        (40, True, ()),
        (30, True, ()),
        (29, True, (R.BATTERY_LOW,)),
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
def test_battery_hysteresis(battery: int, computing: bool, want: tuple[policy.Reason, ...]) -> None:
    assert _judge(_status(batteryPercent=battery), computing=computing).reasons == want


CASES: list[Any] = [
    pytest.param({}, {}, (), id="all-clear"),
    pytest.param({"state": "Driving", "charging": False}, {}, (R.NOT_PARKED,), id="driving"),
    pytest.param({"state": "Asleep"}, {}, (R.ASLEEP,), id="asleep"),
    pytest.param({"state": "Offline"}, {}, (R.OFFLINE,), id="signals-lost-is-offline-only"),
    pytest.param({"state": None}, {}, (R.OFFLINE,), id="never-reported"),
    pytest.param({"batteryPercent": None}, {}, (R.OFFLINE,), id="no-battery-reported"),
    pytest.param({"network": None}, {}, (R.OFFLINE,), id="no-network-reported"),
    pytest.param(
        {"charging": False}, {"spec": _spec(requireCharging=True)}, (R.NOT_CHARGING,), id="charging-required"
    ),
    pytest.param({"charging": False}, {}, (), id="charging-not-required"),
    pytest.param({"network": "Metered"}, {}, (R.METERED_NETWORK,), id="metered"),
    pytest.param(
        {"network": "Metered"}, {"spec": _spec(requireUnmeteredNetwork=False)}, (), id="metered-allowed"
    ),
    pytest.param({"network": "None"}, {}, (R.NO_NETWORK,), id="no-network"),
    pytest.param({"thermal": {"socCelsius": 86}}, {"computing": True}, (R.TOO_HOT,), id="soc-over-limit"),
    pytest.param({"thermal": {"socCelsius": 85}}, {"computing": True}, (), id="soc-at-limit-while-computing"),
    pytest.param(
        {"thermal": {"socCelsius": 84}}, {}, (R.TOO_HOT,), id="soc-within-restart-margin-while-idle"
    ),
    pytest.param({"thermal": {"socCelsius": 83}}, {}, (), id="soc-cooled-by-the-margin"),
    pytest.param({"thermal": {"cabinCelsius": 46}}, {}, (R.TOO_HOT,), id="cabin-over-limit"),
    pytest.param({"thermal": None}, {}, (), id="no-temperatures-reported"),
    pytest.param(
        {"energyUsedTodayKwh": 5.0},
        {"spec": _spec(maxEnergyKwhPerDay=5)},
        (R.ENERGY_BUDGET_SPENT,),
        id="energy-spent",
    ),
    pytest.param({"energyUsedTodayKwh": 4.99}, {"spec": _spec(maxEnergyKwhPerDay=5)}, (), id="energy-left"),
    pytest.param(
        {"energyUsedTodayKwh": 5.0, "observedAt": "2025-03-06T23:00:00Z"},
        {"spec": _spec(maxEnergyKwhPerDay=5)},
        (),
        id="energy-reported-yesterday-is-not-today's",
    ),
    pytest.param(
        {"energyUsedTodayKwh": 5.0, "observedAt": "2025-03-06T23:30:00Z"},
        {"spec": _spec(maxEnergyKwhPerDay=5, timeZone="Europe/Berlin")},
        (R.ENERGY_BUDGET_SPENT,),
        id="energy-day-is-the-owner's-local-day",
    ),
    pytest.param({"predictedDeparture": _leaving(5)}, {}, (R.DEPARTING_SOON,), id="departing-before-a-unit"),
    pytest.param({"predictedDeparture": _leaving(5, 0.3)}, {}, (), id="unsure-departure-ignored"),
    pytest.param({"predictedDeparture": _leaving(11)}, {}, (), id="departure-after-a-unit"),
    pytest.param({"predictedDeparture": _leaving(11)}, {"unit": 900}, (R.DEPARTING_SOON,), id="longer-units"),
    pytest.param(
        {"state": "Driving", "batteryPercent": 10, "network": "Metered", "charging": False},
        {"spec": _spec(requireCharging=True)},
        (R.NOT_PARKED, R.BATTERY_LOW, R.NOT_CHARGING, R.METERED_NETWORK),
        id="every-reason-most-important-first",
    ),
]


@pytest.mark.parametrize(("changes", "kwargs", "want"), CASES)
def test_reasons(changes: dict[str, Any], kwargs: dict[str, Any], want: tuple[policy.Reason, ...]) -> None:
    verdict = _judge(_status(**changes), **kwargs)
    assert verdict.reasons == want
    assert verdict.eligible is (not want)
    assert len(verdict.notes) == len(want)
    assert verdict.message.startswith("Eligible" if not want else "Not eligible: ")


@pytest.mark.parametrize(
    ("window", "local", "want"),
    [
        ({"start": "09:00", "end": "17:00"}, datetime(2025, 3, 7, 9, 0), True),
        ({"start": "09:00", "end": "17:00"}, datetime(2025, 3, 7, 17, 0), False),
        ({"start": "22:00", "end": "06:00"}, datetime(2025, 3, 7, 23, 30), True),
        ({"start": "22:00", "end": "06:00"}, datetime(2025, 3, 8, 5, 59), True),
        ({"start": "22:00", "end": "06:00"}, datetime(2025, 3, 8, 6, 0), False),
        ({"start": "22:00", "end": "06:00"}, datetime(2025, 3, 7, 12, 0), False),
        ({"start": "22:00", "end": "06:00", "days": ["Friday"]}, datetime(2025, 3, 8, 5, 0), True),
        ({"start": "22:00", "end": "06:00", "days": ["Friday"]}, datetime(2025, 3, 7, 5, 0), False),
        (
            {"start": "00:00", "end": "24:00", "days": ["Saturday", "Sunday"]},
            datetime(2025, 3, 8, 23, 59),
            True,
        ),
        (
            {"start": "00:00", "end": "24:00", "days": ["Saturday", "Sunday"]},
            datetime(2025, 3, 7, 23, 59),
            False,
        ),
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
def test_time_windows(window: dict[str, Any], local: datetime, want: bool) -> None:
    mapped = policy.time_window(vehiclenode.TimeWindow.model_validate(window))
    assert mapped.contains(local) is want
    spec = _spec(timeWindows=[window])
    reasons = _judge(_status(), spec=spec, now=local.replace(tzinfo=UTC)).reasons
    assert reasons == (() if want else (R.OUTSIDE_TIME_WINDOW,))


def test_time_windows_use_the_owner_time_zone() -> None:
    berlin_nights = _spec(timeZone="Europe/Berlin", timeWindows=[{"start": "22:00", "end": "06:00"}])
    at_2130_utc = NOW.replace(hour=21, minute=30)  # 22:30 in Berlin (winter time)
    assert _judge(_status(), spec=berlin_nights, now=at_2130_utc).eligible
    assert _judge(_status(), spec=berlin_nights).reasons == (R.OUTSIDE_TIME_WINDOW,)


def test_rules_map_the_spec_field_by_field() -> None:
    got = policy.rules_from_spec(vehiclenode.OwnerPolicy(), expected_unit_seconds=900)
    assert (got.start_battery_percent, got.reserve_battery_percent) == (50, 30)
    assert (got.require_charging, got.require_unmetered_network) == (False, True)
    assert (got.max_soc_celsius, got.max_cabin_celsius, got.max_pack_celsius) == (85, 45, None)
    assert (got.time_windows, got.energy_budget_kwh_per_day, got.expected_unit_seconds) == ((), None, 900)
    assert got.temperature_limits == (43, 45, 83, 85)


def test_unknown_time_zone_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"spec.policy.timeZone: unknown time zone 'Mars/Olympus_Mons'"):
        _judge(_status(), spec=_spec(timeZone="Mars/Olympus_Mons"))


@pytest.mark.parametrize(
    "kwargs",
    [{"start_battery_percent": 30, "reserve_battery_percent": 40}, {"temperature_hysteresis_celsius": -1}],
    ids=["reserve-above-start", "negative-hysteresis"],
)
def test_inconsistent_rules_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        policy.Rules(**kwargs)


def test_flapping_battery_does_not_flap_eligibility() -> None:
    """A battery wobbling between 44 and 55 % while computing: started once, never stopped."""
    computing = False
    flips = 0
    for battery in (55, 48, 52, 45, 51, 46, 55, 44):
        verdict = _judge(_status(batteryPercent=battery), computing=computing)
        flips += verdict.eligible != computing
        computing = verdict.eligible
    assert (flips, computing) == (1, True)


def test_message_is_one_bounded_sentence() -> None:
    verdict = _judge(_status(batteryPercent=45, network="Metered"))
    assert verdict.message == (
        "Not eligible: battery 45 % is below the start threshold of 50 % (once started, work continues "
        "down to 30 %); the owner allows work only on unmetered networks."
    )
    long = policy.Eligibility(reasons=(R.TOO_HOT,), notes=("x" * 5000,))
    assert len(long.message) == 1024
    vehiclenode.OperatorStatus(eligible=False, reasons=list(verdict.reasons), message=long.message)
