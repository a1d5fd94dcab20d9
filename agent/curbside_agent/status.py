"""What the agent reports on its VehicleNode, and whether it changed enough to be worth a write.

Why this module exists: a fleet of ten thousand cars must cost the API server one Lease write
per car per period and nothing else while the cars sit still. The kubelet lesson
(KEP-0009) is that liveness belongs in a Lease and status must not tick. So this pure
function turns an observation into the status the agent owns and answers "changed?", and it
is the only thing that decides whether a status patch is sent.

Only meaningful changes count:

- state, charging and network flips, and the region;
- battery crossing a step (default 1 %) or one of the policy's thresholds (``battery_marks``);
  the reported value is the battery rounded *down* to the step or threshold below it;
- a temperature, the charger power or today's energy moving by at least its step since the
  last report (the last reported value is kept until then, so a sensor hovering at a
  rounding edge never flaps);
- the predicted departure appearing, disappearing, moving by more than ``departure_shift``
  or its confidence moving by at least ``confidence_step``.

**Threshold-faithful.** The operator judges eligibility from this report with the car's own
rule book (``curbside_api.policy``), so a reported value must lie on the same side
of every policy threshold as the live one. ``Thresholds.for_rules`` turns the owner's rules
into marks: the battery is rounded down and temperatures up (whole-number thresholds compare
the same on the rounded value), and a kept ("sticky") value is replaced as soon as the live
one crosses a mark: battery thresholds, temperature limits and limits − margin, the energy
budget, the departure confidence floor, and "departure within one work unit".

``observedAt`` changes only when something else did. It has microsecond precision: it is the
agent's clock at the observation, from which a report's visibility latency is measured.

The dict uses the API's wire names (``VehicleNodeStatus``: ``batteryPercent``, ``thermal``,
``predictedDeparture``...) and only the top-level fields the agent owns (``AGENT_FIELDS``);
the operator's ``operator`` and ``conditions`` are never touched. ``Update.patch`` is the JSON
merge patch to send: fields that disappeared are set to ``null`` so the server drops them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import annotated_types

from curbside_agent import state
from curbside_agent.signals import reading
from curbside_api import policy as rulebook
from curbside_api.v1alpha1 import vehiclenode

AGENT_FIELDS: tuple[str, ...] = vehiclenode.AGENT_OWNED
"""The top-level ``status`` fields the agent writes (the API's list); the rest is the operator's."""

NETWORK: dict[reading.Network, str] = {
    reading.Network.UNMETERED: vehiclenode.Network.UNMETERED.value,
    reading.Network.METERED: vehiclenode.Network.METERED.value,
    reading.Network.NONE: vehiclenode.Network.NONE.value,
}
"""Gateway network names to the API's ``Network`` values."""

_THERMAL = (("cabinCelsius", "cabin_celsius"), ("socCelsius", "soc_celsius"), ("packCelsius", "pack_celsius"))


def _bounds(attr: str) -> tuple[float, float]:
    """The API's bounds for a ``Thermal`` field: a reading beyond them is reported at the bound."""
    low, high = -math.inf, math.inf
    for item in vehiclenode.Thermal.model_fields[attr].metadata:
        if isinstance(item, annotated_types.Ge):
            low = float(item.ge)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Le):
            high = float(item.le)  # type: ignore[arg-type]
    return low, high


_THERMAL_BOUNDS = {attr: _bounds(attr) for _, attr in _THERMAL}


@dataclasses.dataclass(frozen=True, slots=True)
class Observation:
    """What the agent knows right now. ``value`` is the latest full reading (None: none yet)."""

    car: state.CarState
    value: reading.Reading | None
    departure: state.Prediction | None = None
    energy_used_today_kwh: float | None = None
    region: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Thresholds:
    """How much a value must move before it is worth a write, and the marks it must never hide."""

    battery_step_percent: int = 1
    battery_marks: tuple[float, ...] = ()
    temperature_step_celsius: float = 3.0
    temperature_marks: tuple[float, ...] = ()
    charger_power_step_kw: float = 1.0
    energy_step_kwh: float = 0.5
    energy_marks: tuple[float, ...] = ()
    departure_shift: timedelta = timedelta(minutes=5)
    confidence_step: float = 0.1
    confidence_marks: tuple[float, ...] = ()
    departure_lead: timedelta | None = None

    @classmethod
    def for_rules(cls, rules: rulebook.Rules, **steps: Any) -> Thresholds:
        """Thresholds whose marks are the owner's rules, so every report is threshold-faithful."""
        budget = rules.energy_budget_kwh_per_day
        return cls(
            battery_marks=(rules.reserve_battery_percent, rules.start_battery_percent),
            temperature_marks=rules.temperature_limits,
            energy_marks=() if budget is None else (budget,),
            confidence_marks=(rules.departure_min_confidence,),
            departure_lead=timedelta(seconds=rules.expected_unit_seconds),
            **steps,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Update:
    """The status to report, which fields changed, and what the last report was."""

    status: dict[str, Any]
    fields: tuple[str, ...]
    previous: Mapping[str, Any] | None

    @property
    def changed(self) -> bool:
        return bool(self.fields)

    def patch(self) -> dict[str, Any]:
        """The merge patch for ``status``: new values, and ``None`` for fields that went away."""
        body: dict[str, Any] = dict(self.status)
        for key in AGENT_FIELDS:
            if self.previous is not None and key in self.previous and key not in body:
                body[key] = None
        return body


def rfc3339(moment: datetime) -> str:
    """A UTC timestamp (``...Z``), with microseconds when it has any."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def validate(report: Mapping[str, Any]) -> vehiclenode.VehicleNodeStatus:
    """The agent's status dict as the API model, validated as the API server would (pydantic's error)."""
    return vehiclenode.VehicleNodeStatus.model_validate(dict(report))


def quantise_battery(percent: float, *, step: int, marks: tuple[float, ...] = ()) -> int:
    """The battery rounded down to the step grid or the highest threshold at or below it."""
    level = math.floor(percent / step) * step
    crossed = [mark for mark in marks if mark <= percent]
    return int(max(level, math.floor(max(crossed)))) if crossed else int(level)


def _same_side(live: float, reported: float, marks: tuple[float, ...], *, strict: bool) -> bool:
    """Whether ``reported`` compares with every mark as ``live`` does (``>`` if strict, else ``>=``)."""
    if strict:
        return all((live > mark) == (reported > mark) for mark in marks)
    return all((live >= mark) == (reported >= mark) for mark in marks)


def _sticky(
    new: float, old: object, *, step: float, digits: int, marks: tuple[float, ...] = (), strict: bool = False
) -> float:
    """``new`` (rounded) if it moved at least ``step`` from the last reported ``old``, is a fresh
    0, or crossed a mark; else ``old``. A rounded value that would hide a mark is not rounded."""
    if isinstance(old, int | float) and not isinstance(old, bool):
        moved = abs(new - old) >= step or (new == 0 and old != 0)
        if not moved and _same_side(new, old, marks, strict=strict):
            return old
    rounded = round(new, digits) if digits else round(new)
    return rounded if _same_side(new, rounded, marks, strict=strict) else new


def _temperature(measured: float, old: object, *, attr: str, limits: Thresholds) -> int:
    """Whole degrees, rounded up (so ``> limit`` compares the same), kept until a step or a mark."""
    low, high = _THERMAL_BOUNDS[attr]
    live = min(high, max(low, measured))
    if isinstance(old, int) and not isinstance(old, bool) and _still(live, old, limits):
        return old
    return math.ceil(live)


def _still(live: float, old: int, limits: Thresholds) -> bool:
    """Whether a reported temperature may stand: moved less than a step, on the same side of every mark."""
    near = abs(live - old) < limits.temperature_step_celsius
    return near and _same_side(live, old, limits.temperature_marks, strict=True)


def _thermal(value: reading.Reading, old: object, limits: Thresholds) -> dict[str, int]:
    previous = old if isinstance(old, Mapping) else {}
    thermal: dict[str, int] = {}
    for key, attr in _THERMAL:
        measured = getattr(value, attr)
        if measured is not None:
            thermal[key] = _temperature(measured, previous.get(key), attr=attr, limits=limits)
    return thermal


def _soon(at: datetime, now: datetime, lead: timedelta | None) -> bool:
    return lead is not None and at - now < lead


def _departure(
    prediction: state.Prediction | None, old: object, limits: Thresholds, *, now: datetime
) -> dict[str, Any] | None:
    if prediction is None:
        return None
    confidence = _sticky(prediction.confidence, None, step=0, digits=2, marks=limits.confidence_marks)
    fresh = {"time": rfc3339(prediction.at), "confidence": confidence}
    if not isinstance(old, Mapping) or not isinstance(old.get("time"), str):
        return fresh
    old_at, old_confidence = parse_rfc3339(old["time"]), float(old.get("confidence", 0.0))
    shift = abs(prediction.at - old_at)
    surer = abs(prediction.confidence - old_confidence)
    faithful = _same_side(prediction.confidence, old_confidence, limits.confidence_marks, strict=False) and (
        _soon(prediction.at, now, limits.departure_lead) == _soon(old_at, now, limits.departure_lead)
    )
    if shift > limits.departure_shift or surer >= limits.confidence_step or not faithful:
        return fresh
    return dict(old)


def _from_reading(value: reading.Reading, old: Mapping[str, Any], limits: Thresholds) -> dict[str, Any]:
    power = value.charger_power_kw if value.charging else 0.0
    fields: dict[str, Any] = {
        "batteryPercent": quantise_battery(
            value.battery_percent, step=limits.battery_step_percent, marks=limits.battery_marks
        ),
        "charging": value.charging,
        "chargerPowerKw": _sticky(
            power, old.get("chargerPowerKw"), step=limits.charger_power_step_kw, digits=1
        ),
        "network": NETWORK[value.network],
    }
    thermal = _thermal(value, old.get("thermal"), limits)
    if thermal:
        fields["thermal"] = thermal
    return fields


def build(
    observation: Observation,
    previous: Mapping[str, Any] | None,
    *,
    now: datetime,
    limits: Thresholds | None = None,
) -> Update:
    """The status to report for ``observation`` given the ``previous`` report, and what changed.

    ``previous`` may be the last patch the agent sent or the object's status read back from
    the server; fields the agent does not own are ignored. With no reading (signals lost),
    the last reported reading fields are kept: the agent does not know better.
    """
    limits = limits or Thresholds()
    old = {key: value for key, value in (previous or {}).items() if key in AGENT_FIELDS}
    status: dict[str, Any] = {"state": observation.car.value}
    if observation.value is not None:
        status.update(_from_reading(observation.value, old, limits))
    else:
        status.update(
            {key: old[key] for key in AGENT_FIELDS if key in old and key not in ("state", "observedAt")}
        )
    if observation.region is not None:
        status["region"] = observation.region
    if observation.energy_used_today_kwh is not None:
        status["energyUsedTodayKwh"] = _sticky(
            observation.energy_used_today_kwh,
            old.get("energyUsedTodayKwh"),
            step=limits.energy_step_kwh,
            digits=2,
            marks=limits.energy_marks,
        )
    departure = _departure(observation.departure, old.get("predictedDeparture"), limits, now=now)
    if departure is not None:
        status["predictedDeparture"] = departure
    keys = (set(status) | set(old)) - {"observedAt"}
    fields = tuple(sorted(key for key in keys if status.get(key) != old.get(key)))
    status["observedAt"] = rfc3339(now) if fields or "observedAt" not in old else old["observedAt"]
    if not fields and "observedAt" not in old:
        fields = ("observedAt",)
    return Update(status=status, fields=fields, previous=previous)
