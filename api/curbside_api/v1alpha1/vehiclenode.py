"""VehicleNode: one car that can lend its inference computer to the cluster.

Why this exists: a Kubernetes Node says whether a kubelet answers; it cannot say that the
car is parked at 80 % battery on home Wi-Fi and leaves at 07:40. A VehicleNode (cluster
scoped, named like the car's Node) carries what the owner allows (``spec``), what the car
reports (``status``, written by the car's agent) and what the operator concluded
(``status.operator`` and ``status.conditions``, written by the operator only).

Ownership of status, so a ValidatingAdmissionPolicy can enforce it (docs/adr/0001):
the agent writes the top-level observation fields of ``status``; the operator writes
``status.operator`` and ``status.conditions``. Liveness is a Lease per car, never a ticking
field here: ``observedAt`` is when the agent observed what it reports, and changes only
when the report does.

Read top-down: spec parts, spec, status parts, status, the resource.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

import pydantic

from curbside_api import base
from curbside_api import conditions as conds

VIN = r"^[A-HJ-NPR-Z0-9]{17}$"
OWNER = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$"
CLOCK = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
TIME_ZONE = r"^[A-Za-z][A-Za-z0-9_+/-]{0,63}$"


# -- spec ---------------------------------------------------------------------------------
class Vehicle(base.ApiModel):
    """Which car this is and who owns it."""

    vin: str = pydantic.Field(
        pattern=VIN,
        max_length=17,
        description="Vehicle identification number (17 characters, no I, O or Q). Immutable.",
        json_schema_extra=base.immutable("vin"),
    )
    model: str = pydantic.Field(
        min_length=1,
        max_length=base.MAX_NAME,
        description="Make and model, for humans (for example 'Model Y').",
    )
    owner: str = pydantic.Field(
        pattern=OWNER,
        max_length=base.MAX_NAME,
        description="The owner's account ID. Redundant replicas of a unit go to different owners.",
    )


class Hardware(base.ApiModel):
    """The car's inference computer."""

    accelerator: str = pydantic.Field(
        pattern=base.DNS_LABEL,
        max_length=base.MAX_NAME,
        description="Accelerator family as placement names it (for example hw4, hw5, orin).",
    )
    tops: int = pydantic.Field(ge=1, le=100_000, description="Peak INT8 tera-operations per second.")
    memory_gib: int = pydantic.Field(
        alias="memoryGiB", ge=1, le=1024, description="Accelerator memory in GiB."
    )
    power_watts: int | None = pydantic.Field(
        None, ge=1, le=10_000, description="Power the computer draws while computing, watts (credits energy)."
    )


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


class VehicleNodeSpec(base.ApiModel):
    """What the car is and what its owner allows."""

    vehicle: Vehicle = pydantic.Field(description="Identity of the car and its owner.")
    hardware: Hardware = pydantic.Field(description="The car's inference computer.")
    policy: OwnerPolicy = pydantic.Field(
        default_factory=OwnerPolicy, description="The owner's rules for when the car may compute."
    )


# -- status: reported by the car's agent ---------------------------------------------------
class VehicleState(StrEnum):
    """What the car is doing. Only Parked and Charging cars take work."""

    DRIVING = "Driving"
    PARKED = "Parked"
    CHARGING = "Charging"
    ASLEEP = "Asleep"
    OFFLINE = "Offline"


class Network(StrEnum):
    """The car's network: Unmetered (Wi-Fi, Ethernet), Metered (cellular) or None."""

    UNMETERED = "Unmetered"
    METERED = "Metered"
    NONE = "None"


class Thermal(base.ApiModel):
    """Temperatures the owner policy limits."""

    cabin_celsius: int | None = pydantic.Field(None, ge=-60, le=125, description="Cabin temperature, °C.")
    soc_celsius: int | None = pydantic.Field(
        None, ge=-60, le=150, description="Inference computer (SoC) temperature, °C."
    )
    pack_celsius: int | None = pydantic.Field(
        None, ge=-60, le=125, description="Battery pack temperature, °C."
    )


class PredictedDeparture(base.ApiModel):
    """When the car is expected to leave, from the owner's habits and calendar."""

    time: datetime = pydantic.Field(description="Predicted departure time (RFC 3339).")
    confidence: float = pydantic.Field(ge=0, le=1, description="Probability the car stays until then (0-1).")


# -- status: concluded by the operator -----------------------------------------------------
class IneligibleReason(StrEnum):
    """Why a car may not take work now. Several can hold at once."""

    NOT_PARKED = "NotParked"
    ASLEEP = "Asleep"
    OFFLINE = "Offline"
    LEASE_EXPIRED = "LeaseExpired"
    BATTERY_LOW = "BatteryLow"
    NOT_CHARGING = "NotCharging"
    METERED_NETWORK = "MeteredNetwork"
    NO_NETWORK = "NoNetwork"
    TOO_HOT = "TooHot"
    OUTSIDE_TIME_WINDOW = "OutsideTimeWindow"
    ENERGY_BUDGET_SPENT = "EnergyBudgetSpent"
    DEPARTING_SOON = "DepartingSoon"
    UNTRUSTED = "Untrusted"
    QUARANTINED = "Quarantined"
    CORDONED = "Cordoned"


class TrustLevel(StrEnum):
    """How far the operator trusts this car's results: Untrusted cars get every unit
    replicated, Trusted ones are spot-checked."""

    UNTRUSTED = "Untrusted"
    PROBATION = "Probation"
    TRUSTED = "Trusted"
    QUARANTINED = "Quarantined"


class ActiveWork(base.ApiModel):
    """Work units of one job that this car holds now."""

    namespace: str = pydantic.Field(
        pattern=base.DNS_LABEL, max_length=base.MAX_NAME, description="Job namespace."
    )
    job: str = pydantic.Field(min_length=1, max_length=253, description="InferenceJob name.")
    units: int = pydantic.Field(ge=0, le=1_000_000, description="Units leased to this car.")


class Credit(base.ApiModel):
    """What the car has contributed; only validated work counts."""

    validated_units: int = pydantic.Field(0, ge=0, description="Units whose results passed validation.")
    rejected_units: int = pydantic.Field(0, ge=0, description="Units whose results were outvoted or wrong.")
    compute_seconds: float = pydantic.Field(
        0, ge=0, description="Validated compute time, seconds, normalised to a 100-TOPS accelerator."
    )
    energy_kwh: float = pydantic.Field(0, ge=0, description="Energy the car spent on validated units, kWh.")


class Trust(base.ApiModel):
    """The operator's view of how reliable this car's results are."""

    level: TrustLevel = pydantic.Field(TrustLevel.UNTRUSTED, description="Untrusted, Probation or Trusted.")
    valid_streak: int = pydantic.Field(0, ge=0, description="Validated results since the last bad one.")
    error_rate: float = pydantic.Field(
        0, ge=0, le=1, description="Share of recent results that were wrong (0-1)."
    )
    trusted_models: list[Annotated[str, pydantic.StringConstraints(max_length=300)]] = pydantic.Field(
        default_factory=list,
        max_length=32,
        description="Models (name:version) this car is trusted on: its units there run once.",
        json_schema_extra=base.list_type("set"),
    )
    quarantine_reason: str | None = pydantic.Field(
        None, max_length=base.MAX_MESSAGE, description="Why the car was quarantined (it gets no work)."
    )


class OperatorStatus(base.ApiModel):
    """Written by the operator only; agents may not change it."""

    eligible: bool = pydantic.Field(False, description="Whether the car may take work now.")
    reasons: list[IneligibleReason] = pydantic.Field(
        default_factory=list,
        max_length=len(IneligibleReason),
        description="Why the car may not take work, most important first. Empty when eligible.",
        json_schema_extra=base.list_type("set"),
    )
    message: str = pydantic.Field("", max_length=base.MAX_MESSAGE, description="The reasons, for the owner.")
    active_work: list[ActiveWork] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description="Jobs whose units this car holds now.",
        json_schema_extra=base.list_type("map", "namespace", "job"),
    )
    credit: Credit = pydantic.Field(default_factory=Credit, description="Validated contribution.")
    trust: Trust = pydantic.Field(default_factory=Trust, description="Result reliability.")


class VehicleNodeStatus(base.ApiModel):
    """The car's report (top-level fields, by its agent) and the operator's conclusions
    (``operator`` and ``conditions``)."""

    state: VehicleState | None = pydantic.Field(None, description="What the car is doing.")
    battery_percent: int | None = pydantic.Field(None, ge=0, le=100, description="Battery charge, percent.")
    charging: bool | None = pydantic.Field(None, description="Whether the car is charging now.")
    charger_power_kw: float | None = pydantic.Field(None, ge=0, le=1000, description="Charging power, kW.")
    network: Network | None = pydantic.Field(None, description="Unmetered, Metered or None.")
    thermal: Thermal | None = pydantic.Field(None, description="Cabin and inference computer temperatures.")
    region: str | None = pydantic.Field(
        None,
        pattern=base.DNS_LABEL,
        max_length=base.MAX_NAME,
        description="Where the car is (for example eu-west).",
    )
    energy_used_today_kwh: float | None = pydantic.Field(
        None, ge=0, le=1000, description="Energy spent on work today in the policy's time zone, kWh."
    )
    predicted_departure: PredictedDeparture | None = pydantic.Field(
        None, description="When the car is expected to leave."
    )
    observed_at: datetime | None = pydantic.Field(
        None, description="When the agent observed this report. Not a heartbeat: liveness is the car's Lease."
    )
    operator: OperatorStatus | None = pydantic.Field(
        None, description="Eligibility, active work, credit and trust. Written by the operator only."
    )
    conditions: list[conds.Condition] = conds.list_field(
        "Ready (the agent's Lease is fresh) and Eligible. Written by the operator only."
    )


AGENT_OWNED: tuple[str, ...] = (
    "state",
    "batteryPercent",
    "charging",
    "chargerPowerKw",
    "network",
    "thermal",
    "region",
    "energyUsedTodayKwh",
    "predictedDeparture",
    "observedAt",
)
"""Top-level ``status`` fields (wire names) the car's agent writes."""
OPERATOR_OWNED: tuple[str, ...] = ("operator", "conditions")
"""``status`` fields only the operator writes; an admission policy refuses agents' changes to them."""


# -- the resource ------------------------------------------------------------------------
class VehicleNode(base.Resource):
    """A car that lends its inference computer to the cluster. Cluster-scoped; named like the car's Node."""

    crd: ClassVar[base.CrdInfo] = base.CrdInfo(
        kind="VehicleNode",
        plural="vehiclenodes",
        short_names=("vn",),
        scope="Cluster",
        selectable_fields=(".spec.vehicle.owner", ".status.state", ".status.region"),
        printer_columns=(
            base.PrinterColumn("State", ".status.state", "string", "What the car is doing."),
            base.PrinterColumn("Battery", ".status.batteryPercent", "integer", "Battery charge, percent."),
            base.PrinterColumn("Charging", ".status.charging", "boolean", "Whether the car is charging."),
            base.PrinterColumn(
                "Eligible", ".status.operator.eligible", "boolean", "Whether it may take work."
            ),
            base.PrinterColumn("Reason", ".status.operator.reasons[0]", "string", "Main reason it may not."),
            base.PrinterColumn("Age", ".metadata.creationTimestamp", "date", "Time since the car joined."),
            base.PrinterColumn(
                "Trust", ".status.operator.trust.level", "string", "How far its results are trusted."
            ),
            base.PrinterColumn(
                "Credit", ".status.operator.credit.computeSeconds", "number", "Validated compute-seconds."
            ),
            base.PrinterColumn("Region", ".status.region", "string", "Where the car is.", priority=1),
            base.PrinterColumn("Owner", ".spec.vehicle.owner", "string", "Owner account.", priority=1),
            base.PrinterColumn(
                "Accelerator", ".spec.hardware.accelerator", "string", "Hardware.", priority=1
            ),
        ),
    )

    api_version: Literal["curbside.dev/v1alpha1"] = "curbside.dev/v1alpha1"
    kind: Literal["VehicleNode"] = "VehicleNode"
    spec: VehicleNodeSpec = pydantic.Field(description="What the car is and what its owner allows.")
    status: VehicleNodeStatus = pydantic.Field(
        default_factory=VehicleNodeStatus, description="What the car reports and what the operator concluded."
    )
