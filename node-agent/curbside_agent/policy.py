"""The owner's policy, evaluated on the car: may it compute right now, and if not, why not?

Why this module exists: the operator decides where work goes, but the car enforces its
owner's rules itself, so a partitioned or buggy control plane can never run work the owner
forbade. The rules are BOINC's computing preferences and the Google FL system's
idle/charging/unmetered gate, plus what neither has (ANCHORS §2.4):

- **Hysteresis.** Computing starts only at ``start_battery_percent`` (the API's
  ``minBatteryPercent``) and, once started, continues down to ``reserve_battery_percent``.
  Without it a car hovering at the threshold starts and stops every few seconds (BOINC #5310
  and #5815 asked for this and were refused). Temperatures work the same way: stop above the
  limit, start again only ``temperature_hysteresis_celsius`` below it. "Once started" means
  the car was eligible at the previous evaluation (``computing=True``); after any stop,
  restarting needs the start thresholds again.
- Charging required; unmetered network required; no network at all always blocks.
- Time windows in the owner's time zone, on chosen weekdays, including windows that cross
  midnight (a Friday 22:00-06:00 window still holds on Saturday at 05:00).
- A daily energy budget (kWh of compute per local day), kept by ``EnergyMeter``.
- Never while driving or asleep; never when a confident predicted departure comes before one
  work unit could finish.

Reason codes are the API's ``IneligibleReason`` (one vocabulary for the car, ``kubectl get
vn`` and the dashboards), returned in that enum's declaration order, most important first:

| rule | code |
|---|---|
| not in Park, or moving | ``NotParked`` |
| asleep (never woken to compute) | ``Asleep`` |
| the agent cannot read its car's signals | ``Offline`` |
| battery below reserve, or below start while not computing | ``BatteryLow`` |
| charging required and not charging | ``NotCharging`` |
| unmetered required and on a metered network | ``MeteredNetwork`` |
| no network | ``NoNetwork`` |
| SoC, cabin or pack over its limit (or not yet cooled by the margin) | ``TooHot`` |
| outside every time window | ``OutsideTimeWindow`` |
| today's compute energy reached the budget | ``EnergyBudgetSpent`` |
| confident departure sooner than one unit | ``DepartingSoon`` |

``evaluate`` is pure: ``now`` is a parameter. ``Eligibility.notes`` says in words what the
codes compress (for example which battery threshold applies).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo

from curbside_agent import state
from curbside_agent.signals import reading
from curbside_operator.api.v1alpha1 import vehiclenode

Reason = vehiclenode.IneligibleReason
"""The reason codes: the API's enum, so the car and the operator say the same words."""

_RANK = {code: index for index, code in enumerate(Reason)}


def ordered(found: Iterable[vehiclenode.IneligibleReason]) -> tuple[vehiclenode.IneligibleReason, ...]:
    """The given codes without duplicates, most important first (the enum's order)."""
    return tuple(sorted(set(found), key=_RANK.__getitem__))


@dataclasses.dataclass(frozen=True, slots=True)
class TimeWindow:
    """Computing allowed from ``start_minute`` to ``end_minute`` (minutes after local midnight).

    ``end_minute`` below ``start_minute`` crosses midnight; ``1440`` is midnight at the end of
    the day; equal values mean the whole day. ``days`` are the weekdays (Monday = 0) on which
    the window *opens*; empty means every day.
    """

    start_minute: int
    end_minute: int
    days: frozenset[int] = frozenset()

    def _opens_on(self, weekday: int) -> bool:
        return not self.days or weekday in self.days

    def contains(self, local: datetime) -> bool:
        """Whether a local time falls in the window (start inclusive, end exclusive)."""
        minute = local.hour * 60 + local.minute
        weekday = local.weekday()
        if self.start_minute == self.end_minute:
            return self._opens_on(weekday)
        if self.start_minute < self.end_minute:
            return self._opens_on(weekday) and self.start_minute <= minute < self.end_minute
        if minute >= self.start_minute:
            return self._opens_on(weekday)
        return minute < self.end_minute and self._opens_on((weekday - 1) % 7)


@dataclasses.dataclass(frozen=True, slots=True)
class OwnerPolicy:
    """The owner's rules (``apimap.policy_from_api`` builds one from the VehicleNode spec)."""

    start_battery_percent: float = 50.0
    reserve_battery_percent: float = 30.0
    require_charging: bool = False
    require_unmetered_network: bool = True
    max_soc_celsius: float | None = 85.0
    max_cabin_celsius: float | None = 45.0
    max_pack_celsius: float | None = None
    temperature_hysteresis_celsius: float = 2.0
    time_windows: tuple[TimeWindow, ...] = ()
    tz: tzinfo = UTC
    energy_budget_kwh_per_day: float | None = None
    expected_unit_seconds: float = 600.0
    departure_min_confidence: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.reserve_battery_percent <= self.start_battery_percent <= 100:
            raise ValueError(
                "battery thresholds must satisfy 0 <= reserve <= start <= 100, got "
                f"reserve={self.reserve_battery_percent:g} start={self.start_battery_percent:g}"
            )
        if self.temperature_hysteresis_celsius < 0:
            raise ValueError("temperature_hysteresis_celsius must not be negative")


@dataclasses.dataclass(frozen=True, slots=True)
class Eligibility:
    """The verdict: eligible exactly when there is no reason against it."""

    reasons: tuple[vehiclenode.IneligibleReason, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def eligible(self) -> bool:
        return not self.reasons


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


def _battery(policy: OwnerPolicy, percent: float, *, computing: bool) -> str | None:
    if percent < policy.reserve_battery_percent:
        return f"battery {percent:g} % is below the reserve of {policy.reserve_battery_percent:g} %"
    if not computing and percent < policy.start_battery_percent:
        return (
            f"battery {percent:g} % is below the start threshold of {policy.start_battery_percent:g} % "
            f"(once started, work continues down to {policy.reserve_battery_percent:g} %)"
        )
    return None


def _too_hot(policy: OwnerPolicy, value: reading.Reading, *, computing: bool) -> str | None:
    margin = 0.0 if computing else policy.temperature_hysteresis_celsius
    checks = (
        ("SoC", value.soc_celsius, policy.max_soc_celsius),
        ("cabin", value.cabin_celsius, policy.max_cabin_celsius),
        ("pack", value.pack_celsius, policy.max_pack_celsius),
    )
    for what, measured, limit in checks:
        if measured is not None and limit is not None and measured > limit - margin:
            return f"{what} at {measured:g} °C (limit {limit:g} °C, restart below {limit - margin:g} °C)"
    return None


def _signal_reasons(
    policy: OwnerPolicy, value: reading.Reading, *, computing: bool
) -> list[tuple[vehiclenode.IneligibleReason, str]]:
    found: list[tuple[vehiclenode.IneligibleReason, str]] = []
    battery = _battery(policy, value.battery_percent, computing=computing)
    if battery is not None:
        found.append((Reason.BATTERY_LOW, battery))
    if policy.require_charging and not value.charging:
        found.append((Reason.NOT_CHARGING, "the owner allows work only while charging"))
    if value.network is reading.Network.NONE:
        found.append((Reason.NO_NETWORK, "no network"))
    elif value.network is reading.Network.METERED and policy.require_unmetered_network:
        found.append((Reason.METERED_NETWORK, "the owner allows work only on unmetered networks"))
    hot = _too_hot(policy, value, computing=computing)
    if hot is not None:
        found.append((Reason.TOO_HOT, hot))
    return found


def departure_too_soon(policy: OwnerPolicy, departure: state.Prediction | None, *, now: datetime) -> bool:
    """Whether a confident enough departure comes before one work unit could finish."""
    if departure is None or departure.confidence < policy.departure_min_confidence:
        return False
    return departure.at - now < timedelta(seconds=policy.expected_unit_seconds)


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
    """Every reason the car may not compute now (none: eligible).

    ``value`` is the latest full reading (for an asleep car, the last one taken while it was
    awake; None when the agent has none, which gives ``Offline``). ``computing`` is whether
    the car was eligible at the previous evaluation; it selects the hysteresis thresholds.
    """
    if value is None:
        return Eligibility(reasons=(Reason.OFFLINE,), notes=("the car's signals cannot be read",))
    found: list[tuple[vehiclenode.IneligibleReason, str]] = []
    if car is state.CarState.DRIVING:
        found.append((Reason.NOT_PARKED, "the car is not in Park"))
    elif car is state.CarState.ASLEEP:
        found.append((Reason.ASLEEP, "the car sleeps and is never woken to compute"))
    elif car is state.CarState.OFFLINE:
        found.append((Reason.OFFLINE, "the car's signals cannot be read"))
    if departure is not None and departure_too_soon(policy, departure, now=now):
        found.append((Reason.DEPARTING_SOON, f"departure expected at {departure.at.isoformat()}"))
    found.extend(_signal_reasons(policy, value, computing=computing))
    local = now.astimezone(policy.tz)
    if policy.time_windows and not any(window.contains(local) for window in policy.time_windows):
        found.append((Reason.OUTSIDE_TIME_WINDOW, f"local time {local:%a %H:%M} is outside every window"))
    budget = policy.energy_budget_kwh_per_day
    if budget is not None and energy_used_kwh >= budget:
        found.append((Reason.ENERGY_BUDGET_SPENT, f"{energy_used_kwh:.2f} of {budget:g} kWh used today"))
    found.sort(key=lambda pair: _RANK[pair[0]])
    return Eligibility(reasons=ordered(code for code, _ in found), notes=tuple(note for _, note in found))
