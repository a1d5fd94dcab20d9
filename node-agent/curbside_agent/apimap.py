"""The one place where the agent's internal types meet the VehicleNode API models.

Why this module exists: the agent's pure modules use small frozen dataclasses (cheap to build
ten thousand times a second in the simulator, minutes-after-midnight time windows, a real
``tzinfo``), while the API speaks pydantic models with ``"HH:MM"`` strings and IANA zone
names. Converting in one adapter keeps both sides simple, and a change to the API shows up
here as a type error rather than as a silently ignored field.

- ``policy_from_api``: ``spec.policy`` -> ``policy.OwnerPolicy``.
- ``status_model``: the agent's status dict (from ``status.build``) -> ``VehicleNodeStatus``,
  which validates it exactly as the API server's schema would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from curbside_agent import policy
from curbside_operator.api.v1alpha1 import vehiclenode

WEEKDAYS: dict[vehiclenode.Weekday, int] = {
    vehiclenode.Weekday(day): index for index, day in enumerate(vehiclenode.Weekday)
}
"""API weekday names to ``datetime.weekday()`` numbers (Monday = 0)."""


def minutes(clock: str) -> int:
    """``"HH:MM"`` (``"24:00"`` allowed) to minutes after midnight."""
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


def time_window(window: vehiclenode.TimeWindow) -> policy.TimeWindow:
    return policy.TimeWindow(
        start_minute=minutes(window.start),
        end_minute=minutes(window.end),
        days=frozenset(WEEKDAYS[day] for day in window.days),
    )


def policy_from_api(
    spec: vehiclenode.OwnerPolicy,
    *,
    expected_unit_seconds: float = 600.0,
    departure_min_confidence: float = 0.5,
) -> policy.OwnerPolicy:
    """The agent's policy for a VehicleNode's ``spec.policy``.

    ``expected_unit_seconds`` is how long a work unit is expected to take (a job property the
    operator knows); a car whose confident departure is sooner is not eligible.
    """
    try:
        tz = ZoneInfo(spec.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"spec.policy.timeZone: unknown time zone {spec.time_zone!r}") from exc
    return policy.OwnerPolicy(
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


def status_model(report: Mapping[str, Any]) -> vehiclenode.VehicleNodeStatus:
    """Validate the agent's status dict against the API model (raises pydantic's error)."""
    return vehiclenode.VehicleNodeStatus.model_validate(dict(report))
