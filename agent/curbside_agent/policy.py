"""The owner's policy on the car: the API's rule book applied to live readings, and the energy meter.

Why this module exists: the rules themselves live in ``curbside_api.policy``, so the
operator judges a car from its reported status exactly as the car judges itself (see that
module for the rules and the reason codes). What is the car's alone is here:

- ``evaluate``: the same verdict from a live ``Reading`` (raw battery, temperatures, the
  agent's own departure prediction and energy meter) instead of a reported status; a thin
  adapter that turns the reading into the rule book's ``Facts``.
- ``EnergyMeter``: compute energy used on one local day, which only the car can measure.
- ``EnergyCounter``: turns the inference computer's cumulative counter (the reading's
  ``energyUsedKwh``) into the energy used between two readings, a reboot never counting
  as negative energy.

The rule book's names are re-exported (``OwnerPolicy`` is ``api.policy.Rules``), so agent
code says ``policy.OwnerPolicy`` and ``policy.Reason`` as before.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, tzinfo

from curbside_agent import state, status
from curbside_agent.signals import reading
from curbside_api import policy as rulebook
from curbside_api.v1alpha1 import vehiclenode

Reason = rulebook.Reason
OwnerPolicy = rulebook.Rules
TimeWindow = rulebook.TimeWindow
Eligibility = rulebook.Eligibility
ordered = rulebook.ordered
from_spec = rulebook.rules_from_spec


@dataclasses.dataclass(frozen=True, slots=True)
class EnergyMeter:
    """Compute energy used on one local day; a new day starts from zero."""

    day: date | None = None
    used_kwh: float = 0.0

    def record(self, kwh: float, *, at: datetime, tz: tzinfo) -> EnergyMeter:
        """A meter with ``kwh`` more used at ``at`` (reset first if ``at`` is on a new local day)."""
        today = at.astimezone(tz).date()
        base = self.used_kwh if self.day == today else 0.0
        return EnergyMeter(day=today, used_kwh=base + kwh)

    def used_on(self, *, now: datetime, tz: tzinfo) -> float:
        """Energy used on ``now``'s local day."""
        return self.used_kwh if self.day == now.astimezone(tz).date() else 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class EnergyCounter:
    """The last value seen of the car's cumulative energy counter (kWh; None: none seen yet)."""

    last_kwh: float | None = None

    def advance(self, kwh: float) -> tuple[EnergyCounter, float]:
        """The counter at ``kwh`` and the energy used since the previous value.

        The first value is only a baseline (nothing is known of what came before it, so 0 is
        used). A value below the previous one means the computer restarted and its counter
        began again at zero: the energy used is ``kwh`` itself, never the negative difference
        (a counter reset, as Prometheus' ``increase`` treats one).
        """
        if self.last_kwh is None:
            used = 0.0
        elif kwh >= self.last_kwh:
            used = kwh - self.last_kwh
        else:
            used = kwh
        return EnergyCounter(last_kwh=kwh), used


def as_departure(prediction: state.Prediction | None) -> rulebook.Departure | None:
    """The agent's prediction as the rule book sees it."""
    return (
        None if prediction is None else rulebook.Departure(at=prediction.at, confidence=prediction.confidence)
    )


def facts(
    *,
    car: vehiclenode.VehicleState,
    value: reading.Reading | None,
    prediction: state.Prediction | None,
    energy_used_kwh: float,
) -> rulebook.Facts:
    """A live reading as the rule book's facts (no reading: unknown, hence ``Offline``)."""
    if value is None:
        return rulebook.Facts(state=car)
    return rulebook.Facts(
        state=car,
        battery_percent=value.battery_percent,
        charging=value.charging,
        network=vehiclenode.Network(status.NETWORK[value.network]),
        soc_celsius=value.soc_celsius,
        cabin_celsius=value.cabin_celsius,
        pack_celsius=value.pack_celsius,
        departure=as_departure(prediction),
        energy_used_kwh=energy_used_kwh,
    )


def evaluate(
    policy: OwnerPolicy,
    *,
    car: vehiclenode.VehicleState,
    value: reading.Reading | None,
    computing: bool,
    departure: state.Prediction | None,
    energy_used_kwh: float,
    now: datetime,
) -> Eligibility:
    """Every reason the car may not compute now (none: eligible), from its live signals.

    ``value`` is the latest full reading (for an asleep car, the last one taken while it was
    awake; None when the agent has none, which gives ``Offline``). ``computing`` is whether
    the car was eligible at the previous evaluation; it selects the hysteresis thresholds.
    """
    found = facts(car=car, value=value, prediction=departure, energy_used_kwh=energy_used_kwh)
    return rulebook.evaluate(policy, found, computing=computing, now=now)
