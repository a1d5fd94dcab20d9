"""The agent's status: only meaningful changes count, nothing ticks, and it fits the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from curbside_agent import state, status
from curbside_agent.signals import reading
from curbside_api.v1alpha1 import vehiclenode

T0 = datetime(2025, 3, 7, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=7)
S = state.CarState


def _r(**changes: Any) -> reading.Reading:
    base = reading.Reading(
        timestamp=T0,
        gear=reading.Gear.PARK,
        battery_percent=80.4,
        charging=True,
        charger_power_kw=11.0,
        network=reading.Network.UNMETERED,
        cabin_celsius=20.0,
        soc_celsius=50.0,
    )
    return base._replace(**changes)


def _obs(value: reading.Reading | None = None, **changes: Any) -> status.Observation:
    value = _r() if value is None else value
    fields: dict[str, Any] = {"car": state.car_state(value), "value": value}
    fields.update(changes)
    return status.Observation(**fields)


def _departure(minutes: float, confidence: float = 0.9) -> state.Prediction:
    return state.Prediction(T0 + timedelta(hours=5, minutes=minutes), confidence, state.Basis.LEARNED_PATTERN)


BASE = _obs(departure=_departure(0), energy_used_today_kwh=1.0, region="eu-west")
FIRST = status.build(BASE, None, now=T0).status
LIMITS = status.Thresholds(battery_marks=(30, 50))


def test_first_report_is_complete_and_valid_for_the_api() -> None:
    assert FIRST == {
        "state": "Charging",
        "batteryPercent": 80,
        "charging": True,
        "chargerPowerKw": 11.0,
        "network": "Unmetered",
        "thermal": {"cabinCelsius": 20, "socCelsius": 50},
        "region": "eu-west",
        "energyUsedTodayKwh": 1.0,
        "predictedDeparture": {"time": "2025-03-07T17:00:00Z", "confidence": 0.9},
        "observedAt": "2025-03-07T12:00:00Z",
    }
    model = vehiclenode.VehicleNodeStatus.model_validate(FIRST)
    assert {key: value for key, value in model.to_json().items() if key != "conditions"} == FIRST


@pytest.mark.parametrize(
    ("observation", "want_fields"),
    [
        (BASE, ()),
        (
            _obs(
                _r(battery_percent=80.99),
                departure=_departure(0),
                energy_used_today_kwh=1.0,
                region="eu-west",
            ),
            (),
        ),
        (
            _obs(
                _r(charger_power_kw=11.8),
                departure=_departure(0),
                energy_used_today_kwh=1.2,
                region="eu-west",
            ),
            (),
        ),
        (
            _obs(_r(soc_celsius=52.9), departure=_departure(0), energy_used_today_kwh=1.0, region="eu-west"),
            (),
        ),
        (_obs(departure=_departure(4), energy_used_today_kwh=1.0, region="eu-west"), ()),
        (_obs(departure=_departure(0, 0.95), energy_used_today_kwh=1.0, region="eu-west"), ()),
        (
            _obs(
                _r(battery_percent=81.0), departure=_departure(0), energy_used_today_kwh=1.0, region="eu-west"
            ),
            ("batteryPercent",),
        ),
        (
            _obs(
                _r(battery_percent=79.9), departure=_departure(0), energy_used_today_kwh=1.0, region="eu-west"
            ),
            ("batteryPercent",),
        ),
        (
            _obs(_r(charging=False), departure=_departure(0), energy_used_today_kwh=1.0, region="eu-west"),
            ("chargerPowerKw", "charging", "state"),
        ),
        (
            _obs(
                _r(network=reading.Network.METERED),
                departure=_departure(0),
                energy_used_today_kwh=1.0,
                region="eu-west",
            ),
            ("network",),
        ),
        (
            _obs(_r(soc_celsius=53.0), departure=_departure(0), energy_used_today_kwh=1.0, region="eu-west"),
            ("thermal",),
        ),
        (_obs(departure=_departure(6), energy_used_today_kwh=1.0, region="eu-west"), ("predictedDeparture",)),
        (
            _obs(departure=_departure(0, 0.5), energy_used_today_kwh=1.0, region="eu-west"),
            ("predictedDeparture",),
        ),
        (_obs(energy_used_today_kwh=1.0, region="eu-west"), ("predictedDeparture",)),
        (_obs(departure=_departure(0), energy_used_today_kwh=1.5, region="eu-west"), ("energyUsedTodayKwh",)),
        (_obs(departure=_departure(0), energy_used_today_kwh=0.0, region="eu-west"), ("energyUsedTodayKwh",)),
        (
            _obs(_r(asleep=True), departure=_departure(0), energy_used_today_kwh=1.0, region="eu-west"),
            ("state",),
        ),
        (
            status.Observation(S.OFFLINE, None, _departure(0), energy_used_today_kwh=1.0, region="eu-west"),
            ("state",),
        ),
    ],
    ids=[
        "identical",
        "battery-within-the-same-percent",
        "charger-power-and-energy-within-step",
        "temperature-within-step",
        "departure-moved-a-little",
        "confidence-moved-a-little",
        "battery-crossed-a-percent-up",
        "battery-crossed-a-percent-down",
        "unplugged",
        "network-flip",
        "temperature-moved-a-step",
        "departure-moved-more-than-five-minutes",
        "confidence-moved-a-step",
        "departure-gone",
        "energy-moved-a-step",
        "energy-reset-at-midnight",
        "fell-asleep",
        "signals-lost-keeps-last-readings",
    ],
)
def test_only_meaningful_changes_count(observation: status.Observation, want_fields: tuple[str, ...]) -> None:
    update = status.build(observation, FIRST, now=LATER)
    assert update.fields == want_fields
    assert update.changed is bool(want_fields)
    want_observed = "2025-03-07T12:07:00Z" if want_fields else FIRST["observedAt"]
    assert update.status["observedAt"] == want_observed
    vehiclenode.VehicleNodeStatus.model_validate(update.status)


def test_unchanged_status_is_stable_over_many_observations() -> None:
    previous = FIRST
    writes = 0
    for minute in range(1, 600):
        wobble = _r(battery_percent=80.4 + (minute % 5) / 10, soc_celsius=50 + minute % 3)
        observation = _obs(
            wobble, departure=_departure(minute % 4), energy_used_today_kwh=1.0, region="eu-west"
        )
        update = status.build(observation, previous, now=T0 + timedelta(minutes=minute))
        writes += update.changed
        previous = update.status
    assert writes == 0
    assert previous == FIRST


@pytest.mark.parametrize(
    ("percent", "step", "marks", "want"),
    [
        (80.9, 1, (), 80),
        (80.9, 5, (), 80),
        (49.9, 5, (30, 50), 45),
        (50.0, 5, (30, 50), 50),
        (52.0, 5, (30, 52), 52),
        (53.0, 5, (30, 52), 52),
        (55.0, 5, (30, 52), 55),
        (0.2, 1, (30,), 0),
    ],
    ids=[
        "floor",
        "floor-to-step",
        "below-mark",
        "at-mark",
        "mark-off-grid",
        "above-mark",
        "next-step",
        "empty",
    ],
)
def test_quantise_battery(percent: float, step: int, marks: tuple[float, ...], want: int) -> None:
    assert status.quantise_battery(percent, step=step, marks=marks) == want


def test_policy_threshold_crossing_counts_with_a_coarse_step() -> None:
    coarse = status.Thresholds(battery_step_percent=10, battery_marks=(33,))
    above = status.build(_obs(_r(battery_percent=34)), None, now=T0, limits=coarse).status
    assert status.build(_obs(_r(battery_percent=33.5)), above, now=LATER, limits=coarse).fields == ()
    assert status.build(_obs(_r(battery_percent=32.9)), above, now=LATER, limits=coarse).fields == (
        "batteryPercent",
    )


def test_patch_deletes_fields_that_went_away_and_ignores_operator_fields() -> None:
    previous = {**FIRST, "operator": {"eligible": True}, "conditions": []}
    update = status.build(_obs(energy_used_today_kwh=1.0, region="eu-west"), previous, now=LATER)
    patch = update.patch()
    assert patch["predictedDeparture"] is None
    assert "operator" not in patch
    assert "conditions" not in patch
    assert update.fields == ("predictedDeparture",)
