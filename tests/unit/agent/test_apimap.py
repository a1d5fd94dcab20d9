"""The adapter from the VehicleNode API models to the agent's own types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from curbside_agent import apimap, policy
from curbside_operator.api.v1alpha1 import vehiclenode


def test_default_api_policy_maps_field_by_field() -> None:
    got = apimap.policy_from_api(vehiclenode.OwnerPolicy(), expected_unit_seconds=900)
    assert (got.start_battery_percent, got.reserve_battery_percent) == (50, 30)
    assert (got.require_charging, got.require_unmetered_network) == (False, True)
    assert (got.max_soc_celsius, got.max_cabin_celsius, got.max_pack_celsius) == (85, 45, None)
    assert (got.time_windows, got.energy_budget_kwh_per_day, got.expected_unit_seconds) == ((), None, 900)
    assert got.tz.utcoffset(datetime(2025, 1, 1)) is not None


@pytest.mark.parametrize(
    ("window", "local", "want"),
    [
        ({"start": "22:00", "end": "06:00"}, datetime(2025, 3, 8, 5, 59), True),
        ({"start": "22:00", "end": "06:00", "days": ["Friday"]}, datetime(2025, 3, 8, 5, 0), True),
        ({"start": "22:00", "end": "06:00", "days": ["Friday"]}, datetime(2025, 3, 7, 5, 0), False),
        ({"start": "18:00", "end": "24:00", "days": ["Saturday"]}, datetime(2025, 3, 8, 23, 59), True),
    ],
    ids=["overnight", "overnight-from-friday", "not-from-thursday", "until-midnight"],
)
def test_time_windows_map_with_days(window: dict[str, Any], local: datetime, want: bool) -> None:
    mapped = apimap.time_window(vehiclenode.TimeWindow.model_validate(window))
    assert mapped.contains(local) is want


def test_policy_time_zone_is_applied() -> None:
    spec = vehiclenode.OwnerPolicy.model_validate(
        {"timeZone": "Europe/Berlin", "timeWindows": [{"start": "22:00", "end": "06:00"}]}
    )
    rules = apimap.policy_from_api(spec)
    at_2130_utc_winter = datetime(2025, 1, 10, 21, 30, tzinfo=UTC)  # 22:30 in Berlin
    assert rules.time_windows[0].contains(at_2130_utc_winter.astimezone(rules.tz))
    assert isinstance(rules, policy.OwnerPolicy)


def test_unknown_time_zone_names_the_field() -> None:
    spec = vehiclenode.OwnerPolicy.model_validate({"timeZone": "Mars/Olympus_Mons"})
    with pytest.raises(ValueError, match=r"spec.policy.timeZone: unknown time zone 'Mars/Olympus_Mons'"):
        apimap.policy_from_api(spec)


def test_status_model_rejects_what_the_api_would() -> None:
    assert apimap.status_model({"state": "Parked", "batteryPercent": 50}).battery_percent == 50
    with pytest.raises(ValueError, match="batteryPercent"):
        apimap.status_model({"state": "Parked", "batteryPercent": 150})
