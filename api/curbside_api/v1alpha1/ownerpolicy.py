"""A VehicleNode's owner policy: when the owner lets the car compute.

Why this exists: the policy is the part of a VehicleNode's spec that both sides enforce, the
car's agent locally and the operator when it places work (``curbside_api.policy`` holds the
rules over these fields). It is the largest part of the spec, so it reads on its own here;
``vehiclenode`` carries it as ``spec.policy`` and re-exports its types.
"""

from __future__ import annotations

from enum import StrEnum

import pydantic

from curbside_api import base

CLOCK = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
TIME_ZONE = r"^[A-Za-z][A-Za-z0-9_+/-]{0,63}$"


class Weekday(StrEnum):
    """A day of the week."""

    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"


class TimeWindow(base.ApiModel):
    """A time of day when the car may compute. A window whose end is before its start runs
    past midnight (22:00-06:00)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.rule("self.start != self.end", "start and end must differ", field_path=".end")
        )
    )

    days: list[Weekday] = pydantic.Field(
        default_factory=list,
        max_length=7,
        description="Days the window opens on. Empty means every day.",
        json_schema_extra=base.list_type("set"),
    )
    start: str = pydantic.Field(
        pattern=CLOCK, max_length=5, description="Opening time, HH:MM in the policy's time zone."
    )
    end: str = pydantic.Field(
        pattern=CLOCK, max_length=5, description="Closing time, HH:MM (24:00 is midnight)."
    )

    @pydantic.field_validator("end")
    @classmethod
    def _end_is_not_start(cls, end: str, info: pydantic.ValidationInfo) -> str:
        if end == info.data.get("start"):
            raise ValueError("start and end must differ")
        return end


class OwnerPolicy(base.ApiModel):
    """When the owner lets the car compute. The operator never places work that breaks it,
    and the agent stops work locally the moment it is broken."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.rule(
                "self.reserveBatteryPercent < self.minBatteryPercent",
                "reserveBatteryPercent must be below minBatteryPercent (hysteresis)",
                field_path=".reserveBatteryPercent",
            )
        )
    )

    min_battery_percent: int = pydantic.Field(
        50, ge=1, le=100, description="Start taking work only at or above this battery level (percent)."
    )
    reserve_battery_percent: int = pydantic.Field(
        30,
        validate_default=True,
        ge=0,
        le=99,
        description="Stop working below this battery level (percent). Must be below "
        "minBatteryPercent, so a car near the threshold does not flap on and off.",
    )
    require_charging: bool = pydantic.Field(False, description="Compute only while plugged in and charging.")
    require_unmetered_network: bool = pydantic.Field(
        True, description="Compute only on an unmetered network (home Wi-Fi, depot Ethernet)."
    )
    max_soc_celsius: int = pydantic.Field(
        85, ge=20, le=125, description="Stop when the inference computer (SoC) is hotter than this."
    )
    max_cabin_celsius: int = pydantic.Field(
        45, ge=0, le=80, description="Stop when the cabin is hotter than this (the car cools itself)."
    )
    time_windows: list[TimeWindow] = pydantic.Field(
        default_factory=list,
        max_length=14,
        description="When the car may compute. Empty means any time.",
        json_schema_extra=base.list_type("atomic"),
    )
    time_zone: str = pydantic.Field(
        "UTC",
        pattern=TIME_ZONE,
        max_length=64,
        description="IANA time zone of timeWindows (for example Europe/Berlin).",
    )
    max_energy_kwh_per_day: float | None = pydantic.Field(
        None, ge=0, le=200, description="Energy the car may spend on work per day, in kWh. Unset: no limit."
    )

    @pydantic.field_validator("reserve_battery_percent")
    @classmethod
    def _hysteresis(cls, reserve: int, info: pydantic.ValidationInfo) -> int:
        start = info.data.get("min_battery_percent")
        if start is not None and reserve >= start:
            raise ValueError(
                f"reserveBatteryPercent ({reserve}) must be below minBatteryPercent ({start}) (hysteresis)"
            )
        return reserve
