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

Read top-down: spec parts, spec, status parts, status, the resource. The owner's policy, the
largest spec part, is in ``ownerpolicy`` (and importable from here).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

import pydantic

from curbside_api import base
from curbside_api import conditions as conds
from curbside_api.v1alpha1.ownerpolicy import OwnerPolicy as OwnerPolicy
from curbside_api.v1alpha1.ownerpolicy import TimeWindow as TimeWindow
from curbside_api.v1alpha1.ownerpolicy import Weekday as Weekday

VIN = r"^[A-HJ-NPR-Z0-9]{17}$"
OWNER = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$"


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
