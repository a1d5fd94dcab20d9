"""The owner policy on the car: live readings through the API's rule book, and the operator agreeing.

The rules themselves are tested table by table in ``tests/unit/api/test_policy.py``. Here:
the adapter from a live ``Reading`` (raw battery and temperatures, the agent's own departure
prediction), the energy meter, and the promise that makes the operator trustworthy: for any
sequence of readings, judging the status the agent *reported* gives the agent's own verdict.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curbside_agent import policy, state, status
from curbside_agent.signals import reading
from curbside_api import policy as rulebook
from curbside_api.v1alpha1 import vehiclenode

NOW = datetime(2025, 3, 7, 12, 0, tzinfo=UTC)  # a Friday
R = policy.Reason
S = state.CarState


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


def _eval(value: reading.Reading | None, **given: Any) -> policy.Eligibility:
    """``policy.evaluate`` with defaults: the default policy, idle, no departure, no energy used, at NOW."""
    args: dict[str, Any] = {
        "computing": False,
        "departure": None,
        "energy_used_kwh": 0.0,
        "now": NOW,
        **given,
    }
    rules = args.pop("rules", policy.OwnerPolicy())
    car = args.pop("car", None) or (S.PARKED if value is None else state.car_state(value))
    return policy.evaluate(rules, car=car, value=value, **args)


def _soon(minutes: float, confidence: float = 0.9) -> state.Prediction:
    return state.Prediction(NOW + timedelta(minutes=minutes), confidence, state.Basis.SCHEDULED_DEPARTURE)


@pytest.mark.parametrize(
    ("value", "kwargs", "want"),
    [
        (_r(), {}, ()),
        (_r(battery_percent=49.9), {}, (R.BATTERY_LOW,)),
        (_r(battery_percent=29.9), {"computing": True}, (R.BATTERY_LOW,)),
        (_r(gear=reading.Gear.DRIVE, speed_kph=50, charging=False), {}, (R.NOT_PARKED,)),
        (_r(gear=reading.Gear.PARK, speed_kph=3), {}, (R.NOT_PARKED,)),
        (_r(asleep=True), {}, (R.ASLEEP,)),
        (None, {}, (R.OFFLINE,)),
        (_r(), {"car": S.OFFLINE}, (R.OFFLINE,)),
        (_r(network=reading.Network.METERED), {}, (R.METERED_NETWORK,)),
        (_r(network=reading.Network.NONE), {}, (R.NO_NETWORK,)),
        (_r(soc_celsius=85.2), {"computing": True}, (R.TOO_HOT,)),
        (_r(pack_celsius=60.0), {"rules": policy.OwnerPolicy(max_pack_celsius=45)}, (R.TOO_HOT,)),
        (
            _r(),
            {"energy_used_kwh": 5.0, "rules": policy.OwnerPolicy(energy_budget_kwh_per_day=5)},
            (R.ENERGY_BUDGET_SPENT,),
        ),
        (_r(), {"departure": _soon(5)}, (R.DEPARTING_SOON,)),
        (_r(), {"departure": _soon(5, confidence=0.3)}, ()),
    ],
    ids=[
        "all-clear",
        "raw-battery-just-below-start",
        "raw-battery-just-below-reserve",
        "driving",
        "rolling-in-park-is-driving",
        "asleep",
        "no-reading-is-offline",
        "signals-lost-is-offline",
        "metered",
        "no-network",
        "raw-soc-a-fraction-over-the-limit",
        "pack-limit-when-set",
        "energy-budget-spent",
        "departing-before-a-unit-could-finish",
        "unsure-departure-ignored",
    ],
)
def test_live_reading_through_the_rule_book(
    value: reading.Reading | None, kwargs: dict[str, Any], want: tuple[policy.Reason, ...]
) -> None:
    verdict = _eval(value, **kwargs)
    assert verdict.reasons == want
    assert len(verdict.notes) == len(want)


def test_energy_meter_resets_at_local_midnight() -> None:
    tz = timezone(timedelta(hours=2))
    meter = policy.EnergyMeter().record(1.5, at=NOW, tz=tz).record(1.0, at=NOW, tz=tz)
    assert meter.used_on(now=NOW, tz=tz) == 2.5
    after_midnight = datetime(2025, 3, 7, 22, 30, tzinfo=UTC)  # 00:30 next day at UTC+2
    assert meter.used_on(now=after_midnight, tz=tz) == 0.0
    assert meter.record(0.5, at=after_midnight, tz=tz).used_kwh == 0.5


# -- the operator judges the report exactly as the car judges itself -------------------------
# Values near whole numbers and thresholds are where rounding and stickiness could hide a flip.
_near = st.sampled_from([0.0, 0.2, 0.5, 0.8])
_temperature = st.one_of(
    st.none(),
    st.floats(min_value=-60, max_value=150, allow_nan=False),
    st.builds(lambda whole, part: whole + part, st.integers(min_value=20, max_value=140), _near),
)
_battery = st.one_of(
    st.floats(min_value=0, max_value=100, allow_nan=False),
    st.builds(lambda whole, part: whole + part, st.integers(min_value=0, max_value=99), _near),
)
_minutes = st.one_of(
    st.floats(min_value=-30, max_value=120), st.sampled_from([7.0, 9.0, 9.9, 10.0, 10.1, 11.0])
)
_confidence = st.one_of(st.floats(min_value=0, max_value=1), st.sampled_from([0.449, 0.45, 0.495, 0.5, 0.55]))
_readings = st.builds(
    reading.Reading,
    timestamp=st.just(NOW),
    gear=st.sampled_from([reading.Gear.PARK] * 4 + [reading.Gear.DRIVE]),
    battery_percent=_battery,
    speed_kph=st.sampled_from([0.0] * 5 + [12.0]),
    charging=st.booleans(),
    charger_power_kw=st.floats(min_value=0, max_value=50, allow_nan=False),
    network=st.sampled_from(list(reading.Network)),
    cabin_celsius=_temperature,
    pack_celsius=_temperature,
    soc_celsius=_temperature,
    asleep=st.sampled_from([False] * 4 + [True]),
)
_step = st.tuples(
    st.one_of(st.none(), _readings),  # None: signals lost
    st.one_of(st.none(), st.tuples(_minutes, _confidence)),
    st.floats(min_value=0, max_value=0.8),  # energy used since the previous step, kWh
    st.one_of(st.floats(min_value=1, max_value=900), st.sampled_from([5.0, 30.0])),  # seconds since the last
)
_specs = st.fixed_dictionaries(
    {
        "minBatteryPercent": st.integers(min_value=40, max_value=90),
        "reserveBatteryPercent": st.integers(min_value=0, max_value=39),
        "requireCharging": st.booleans(),
        "requireUnmeteredNetwork": st.booleans(),
        "maxSocCelsius": st.integers(min_value=20, max_value=125),
        "maxCabinCelsius": st.integers(min_value=0, max_value=80),
        "maxEnergyKwhPerDay": st.one_of(st.none(), st.floats(min_value=0, max_value=6)),
    }
)


Step = tuple[reading.Reading | None, tuple[float, float] | None, float, float]


def _agree(spec: vehiclenode.OwnerPolicy, steps: list[Step]) -> None:
    """Run the agent's judging and reporting over ``steps``; the operator must agree at each one.

    A step is (reading or None for signals lost, (departure in minutes, confidence) or None,
    kWh used since the last step, seconds since the last step).
    """
    rules = policy.from_spec(spec)
    limits = status.Thresholds.for_rules(rules)
    now, energy, computing = NOW, 0.0, False
    reported: dict[str, Any] | None = None
    last: reading.Reading | None = None
    for value, guess, used, elapsed in steps:
        now += timedelta(seconds=elapsed)
        energy += used
        last = value or last
        car = S.OFFLINE if value is None else state.car_state(value)
        prediction = None
        if guess is not None and car not in (S.OFFLINE, S.DRIVING):
            prediction = state.Prediction(
                now + timedelta(minutes=guess[0]), guess[1], state.Basis.LEARNED_PATTERN
            )
        mine = policy.evaluate(
            rules,
            car=car,
            value=None if car is S.OFFLINE else last,
            computing=computing,
            departure=prediction,
            energy_used_kwh=energy,
            now=now,
        )
        observation = status.Observation(
            car=car, value=last, departure=prediction, energy_used_today_kwh=energy
        )
        update = status.build(observation, reported, now=now, limits=limits)
        reported = update.status if update.changed else reported
        assert reported is not None
        theirs = rulebook.evaluate_status(spec, status.validate(reported), computing=computing, now=now)
        assert theirs.reasons == mine.reasons, (reported, last, prediction)
        computing = mine.eligible


SPEC = vehiclenode.OwnerPolicy()
BUDGET = vehiclenode.OwnerPolicy(max_energy_kwh_per_day=2.0)


@pytest.mark.parametrize(
    ("spec", "steps"),
    [
        (SPEC, [(_r(soc_celsius=85.2), None, 0, 1)]),
        (SPEC, [(_r(soc_celsius=83.2), None, 0, 1)]),
        (SPEC, [(_r(), None, 0, 1), (_r(soc_celsius=85.2), None, 0, 1)]),
        (
            SPEC,
            [
                (_r(soc_celsius=82.0, battery_percent=40), None, 0, 1),
                (_r(soc_celsius=83.4, battery_percent=40), None, 0, 1),
            ],
        ),
        (SPEC, [(_r(cabin_celsius=140.0), None, 0, 1)]),
        (SPEC, [(_r(battery_percent=49.99), None, 0, 1), (_r(battery_percent=50.0), None, 0, 1)]),
        (BUDGET, [(_r(), None, 1.8, 1), (_r(), None, 0.199999, 1), (_r(), None, 0.000002, 1)]),
        (SPEC, [(_r(), (5, 0.496), 0, 1)]),
        (SPEC, [(_r(), (5, 0.55), 0, 1), (_r(), (5, 0.496), 0, 1)]),
        (SPEC, [(_r(), (10.5, 0.9), 0, 1), (_r(), (10.5, 0.9), 0, 40), (_r(), (10.5, 0.9), 0, 40)]),
        (SPEC, [(_r(), (10.0, 0.9), 0, 1), (_r(), (12.0, 0.9), 0, 30)]),
        (SPEC, [(_r(), None, 0, 1), (None, None, 0, 1), (_r(battery_percent=40), None, 0, 1)]),
    ],
    ids=[
        "soc-a-fraction-over-the-limit",
        "soc-a-fraction-over-the-restart-mark",
        "soc-jumps-over-the-limit-while-computing",
        "soc-creeps-over-the-restart-mark-by-less-than-a-step",
        "cabin-beyond-the-api-bound",
        "battery-creeps-to-the-start-threshold",
        "energy-creeps-over-the-budget-by-less-than-a-step",
        "confidence-that-would-round-up-to-the-floor",
        "confidence-sinks-below-the-floor-by-less-than-a-step",
        "departure-kept-while-the-unit-deadline-passes-it",
        "departure-moves-beyond-a-unit-by-less-than-the-shift",
        "signals-lost-and-back",
    ],
)
def test_operator_agrees_at_the_edges(spec: vehiclenode.OwnerPolicy, steps: list[Step]) -> None:
    _agree(spec, steps)


@settings(max_examples=300, deadline=None)
@given(spec_body=_specs, steps=st.lists(_step, min_size=1, max_size=25))
def test_operator_verdict_on_the_report_equals_the_car_verdict(
    spec_body: dict[str, Any], steps: list[Step]
) -> None:
    _agree(
        vehiclenode.OwnerPolicy.model_validate({k: v for k, v in spec_body.items() if v is not None}), steps
    )
