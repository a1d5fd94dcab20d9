"""Owner policy: one set of eligibility rules, applied by the car and by the operator alike.

Why this module exists: the car enforces its owner's rules itself (a partitioned or buggy
control plane must never run work the owner forbade), and the operator decides where work
goes from what the car reported. If the two judged by different code they would disagree at
the edges: the operator would place work the car refuses, or leave idle a car that would
take it. So the rules live here, pure (stdlib and the API models only), and both sides call
them: the agent with its live readings (``curbside_agent.policy.evaluate``), the operator
with the car's reported ``VehicleNodeStatus`` (``evaluate_status``). The agent's status
reports are *threshold-faithful* (``curbside_agent.status``: a reported value lies on the
same side of every threshold below as the live one), so for the same status, spec,
``computing`` and ``now`` both give the same verdict.

The rules are BOINC's computing preferences and the Google FL system's idle/charging/
unmetered gate, plus what neither has:

- **Hysteresis.** Computing starts only at ``start_battery_percent`` (the API's
  ``minBatteryPercent``) and, once started, continues down to ``reserve_battery_percent``.
  Without it a car hovering at the threshold starts and stops every few seconds (BOINC #5310
  and #5815 asked for this and were refused). Temperatures work the same way: stop above the
  limit, start again only ``temperature_hysteresis_celsius`` below it. ``computing`` means
  the car was eligible at the previous evaluation; after any stop, restarting needs the start
  thresholds again.
- Charging required; unmetered network required; no network at all always blocks.
- Time windows in the owner's time zone, on chosen weekdays, including windows that cross
  midnight (a Friday 22:00-06:00 window still holds on Saturday at 05:00).
- A daily energy budget (kWh of compute per local day).
- Never while driving or asleep; never when a confident predicted departure comes before one
  work unit could finish; a car that cannot be read, or never reported, is ``Offline``.

Reasons are the API's ``IneligibleReason``, in that enum's declaration order, most important
first. ``Eligibility.notes`` says in words what the codes compress (for example which
battery threshold applies); ``Eligibility.message`` joins them into one sentence for the
owner. Everything is pure: ``now`` is always a parameter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from curbside_api import base
from curbside_api.v1alpha1 import vehiclenode

Reason = vehiclenode.IneligibleReason
"""The reason codes: the API's enum, so the car and the operator say the same words."""
State = vehiclenode.VehicleState

_RANK = {code: index for index, code in enumerate(Reason)}
WEEKDAYS: dict[vehiclenode.Weekday, int] = dict(zip(vehiclenode.Weekday, range(7), strict=True))
"""API weekday names to ``datetime.weekday()`` numbers (Monday = 0)."""


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
class Rules:
    """The owner's rules in evaluable form (``rules_from_spec`` builds them from ``spec.policy``).

    Thresholds are whole percents and whole degrees (the API's are integers), which is what
    lets a reported status, rounded to whole numbers, be judged exactly like the live values.
    """

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

    @property
    def temperature_limits(self) -> tuple[float, ...]:
        """Every temperature a reading is compared with: each limit, and each limit − margin."""
        limits = (self.max_soc_celsius, self.max_cabin_celsius, self.max_pack_celsius)
        found = {mark for limit in limits if limit is not None for mark in (limit, limit - self.margin)}
        return tuple(sorted(found))

    @property
    def margin(self) -> float:
        return self.temperature_hysteresis_celsius


@dataclasses.dataclass(frozen=True, slots=True)
class Departure:
    """A predicted departure: when, and how sure (0..1)."""

    at: datetime
    confidence: float


@dataclasses.dataclass(frozen=True, slots=True)
class Facts:
    """What the rules look at, from a live reading or from a reported status.

    ``state`` None, or any of battery, charging and network missing, means the car's state is
    unknown (it never reported, or its signals cannot be read): ``Offline``.
    """

    state: vehiclenode.VehicleState | None
    battery_percent: float | None = None
    charging: bool | None = None
    network: vehiclenode.Network | None = None
    soc_celsius: float | None = None
    cabin_celsius: float | None = None
    pack_celsius: float | None = None
    departure: Departure | None = None
    energy_used_kwh: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Eligibility:
    """The verdict: eligible exactly when there is no reason against it."""

    reasons: tuple[vehiclenode.IneligibleReason, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def eligible(self) -> bool:
        return not self.reasons

    @property
    def message(self) -> str:
        """One sentence for the owner (fits ``status.operator.message``)."""
        if not self.reasons:
            return "Eligible: the owner's policy allows work now."
        text = "Not eligible: " + "; ".join(self.notes) + "."
        return text if len(text) <= base.MAX_MESSAGE else text[: base.MAX_MESSAGE - 3] + "..."


def minutes(clock: str) -> int:
    """``"HH:MM"`` (``"24:00"`` allowed) to minutes after midnight."""
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


def time_window(window: vehiclenode.TimeWindow) -> TimeWindow:
    """An API time window in evaluable form."""
    return TimeWindow(
        start_minute=minutes(window.start),
        end_minute=minutes(window.end),
        days=frozenset(WEEKDAYS[day] for day in window.days),
    )


def rules_from_spec(
    spec: vehiclenode.OwnerPolicy,
    *,
    expected_unit_seconds: float = 600.0,
    departure_min_confidence: float = 0.5,
) -> Rules:
    """The rules for a VehicleNode's ``spec.policy``; ValueError naming the field for an unknown zone.

    ``expected_unit_seconds`` is how long a work unit is expected to take (a job property the
    operator knows); a car whose confident departure is sooner is not eligible.
    """
    try:
        tz = ZoneInfo(spec.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"spec.policy.timeZone: unknown time zone {spec.time_zone!r}") from exc
    return Rules(
        start_battery_percent=spec.min_battery_percent,
        reserve_battery_percent=spec.reserve_battery_percent,
        require_charging=spec.require_charging,
        require_unmetered_network=spec.require_unmetered_network,
        max_soc_celsius=spec.max_soc_celsius,
        max_cabin_celsius=spec.max_cabin_celsius,
        time_windows=tuple(time_window(window) for window in spec.time_windows),
        tz=tz,
        energy_budget_kwh_per_day=spec.max_energy_kwh_per_day,
        expected_unit_seconds=expected_unit_seconds,
        departure_min_confidence=departure_min_confidence,
    )


def _battery(rules: Rules, percent: float, *, computing: bool) -> str | None:
    if percent < rules.reserve_battery_percent:
        return f"battery {percent:g} % is below the reserve of {rules.reserve_battery_percent:g} %"
    if not computing and percent < rules.start_battery_percent:
        return (
            f"battery {percent:g} % is below the start threshold of {rules.start_battery_percent:g} % "
            f"(once started, work continues down to {rules.reserve_battery_percent:g} %)"
        )
    return None


def _too_hot(rules: Rules, facts: Facts, *, computing: bool) -> str | None:
    margin = 0.0 if computing else rules.margin
    checks = (
        ("SoC", facts.soc_celsius, rules.max_soc_celsius),
        ("cabin", facts.cabin_celsius, rules.max_cabin_celsius),
        ("pack", facts.pack_celsius, rules.max_pack_celsius),
    )
    for what, measured, limit in checks:
        if measured is not None and limit is not None and measured > limit - margin:
            return f"{what} at {measured:g} °C (limit {limit:g} °C, restart below {limit - margin:g} °C)"
    return None


def departure_too_soon(rules: Rules, departure: Departure | None, *, now: datetime) -> bool:
    """Whether a confident enough departure comes before one work unit could finish."""
    if departure is None or departure.confidence < rules.departure_min_confidence:
        return False
    return departure.at - now < timedelta(seconds=rules.expected_unit_seconds)


_STATE_REASONS = {
    State.DRIVING: (Reason.NOT_PARKED, "the car is not in Park"),
    State.ASLEEP: (Reason.ASLEEP, "the car sleeps and is never woken to compute"),
}


def evaluate(rules: Rules, facts: Facts, *, computing: bool, now: datetime) -> Eligibility:
    """Every reason the car may not compute now (none: eligible). The one rule book."""
    if (
        facts.state is None
        or facts.battery_percent is None
        or facts.charging is None
        or facts.network is None
    ):
        return Eligibility(reasons=(Reason.OFFLINE,), notes=("the car's state is unknown (never reported)",))
    if facts.state is State.OFFLINE:
        return Eligibility(reasons=(Reason.OFFLINE,), notes=("the car's signals cannot be read",))
    found: list[tuple[vehiclenode.IneligibleReason, str]] = []
    if facts.state in _STATE_REASONS:
        found.append(_STATE_REASONS[facts.state])
    if departure_too_soon(rules, facts.departure, now=now):
        assert facts.departure is not None
        found.append((Reason.DEPARTING_SOON, f"departure expected at {facts.departure.at.isoformat()}"))
    battery = _battery(rules, facts.battery_percent, computing=computing)
    if battery is not None:
        found.append((Reason.BATTERY_LOW, battery))
    if rules.require_charging and not facts.charging:
        found.append((Reason.NOT_CHARGING, "the owner allows work only while charging"))
    if facts.network is vehiclenode.Network.NONE:
        found.append((Reason.NO_NETWORK, "no network"))
    elif facts.network is vehiclenode.Network.METERED and rules.require_unmetered_network:
        found.append((Reason.METERED_NETWORK, "the owner allows work only on unmetered networks"))
    hot = _too_hot(rules, facts, computing=computing)
    if hot is not None:
        found.append((Reason.TOO_HOT, hot))
    local = now.astimezone(rules.tz)
    if rules.time_windows and not any(window.contains(local) for window in rules.time_windows):
        found.append((Reason.OUTSIDE_TIME_WINDOW, f"local time {local:%a %H:%M} is outside every window"))
    budget = rules.energy_budget_kwh_per_day
    if budget is not None and facts.energy_used_kwh >= budget:
        found.append(
            (Reason.ENERGY_BUDGET_SPENT, f"{facts.energy_used_kwh:.2f} of {budget:g} kWh used today")
        )
    found.sort(key=lambda pair: _RANK[pair[0]])
    return Eligibility(reasons=ordered(code for code, _ in found), notes=tuple(note for _, note in found))


def facts_from_status(status: vehiclenode.VehicleNodeStatus, *, tz: tzinfo, now: datetime) -> Facts:
    """The facts a reported status gives.

    ``energyUsedTodayKwh`` is "today" as of ``observedAt``: it counts only when ``observedAt``
    falls on ``now``'s local day (the agent's meter starts from zero at local midnight).
    """
    thermal = status.thermal or vehiclenode.Thermal()
    departure = status.predicted_departure
    energy = status.energy_used_today_kwh or 0.0
    observed = status.observed_at
    if observed is None or observed.astimezone(tz).date() != now.astimezone(tz).date():
        energy = 0.0
    guess = None if departure is None else Departure(at=departure.time, confidence=departure.confidence)
    return Facts(
        state=status.state,
        departure=guess,
        battery_percent=status.battery_percent,
        charging=status.charging,
        network=status.network,
        energy_used_kwh=energy,
        soc_celsius=thermal.soc_celsius,
        cabin_celsius=thermal.cabin_celsius,
        pack_celsius=thermal.pack_celsius,
    )


def evaluate_status(
    spec: vehiclenode.OwnerPolicy,
    status: vehiclenode.VehicleNodeStatus,
    *,
    computing: bool,
    now: datetime,
    expected_unit_seconds: float = 600.0,
) -> Eligibility:
    """The operator's verdict on a car from its reported status: the car's own rules.

    ``computing``: whether the car was eligible at the previous evaluation (selects the
    hysteresis thresholds). Raises ValueError for an unknown ``spec.timeZone``.
    """
    rules = rules_from_spec(spec, expected_unit_seconds=expected_unit_seconds)
    return evaluate(rules, facts_from_status(status, tz=rules.tz, now=now), computing=computing, now=now)
