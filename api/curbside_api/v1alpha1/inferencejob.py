"""InferenceJob: batch inference cut into work units and run on parked cars.

Why this exists: an ML engineer says what to run (a Triton model), on what (an input that
splits into work units), where results go, which cars qualify and how far to trust them;
``kubectl get ij`` then shows how far it got. The operator owns ``status`` entirely. Work
units themselves live in the operator's ledger, not here: status is a throttled summary.

What the schema cannot say is checked here too (exactly one input source, quorum at most
replicas), so ``InferenceJob.from_body`` refuses the same objects the API server would.

Read top-down: spec parts, spec, status parts, status, the resource.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

import pydantic

from curbside_api import base
from curbside_api import conditions as conds

MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
IMAGE = r"^[a-z0-9][A-Za-z0-9._/:@-]*$"
URI = r"^[a-z][a-z0-9+.-]*://\S+$"
DEFAULT_TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.12-py3"
MAX_UNITS = 10_000_000
MAX_INLINE_ITEMS = 512
MAX_ITEM_LENGTH = 2048

ParameterValue = Annotated[str, pydantic.StringConstraints(max_length=256)]
InlineItem = Annotated[str, pydantic.StringConstraints(max_length=MAX_ITEM_LENGTH)]


# -- spec ---------------------------------------------------------------------------------
class Model(base.ApiModel):
    """The Triton model that processes every item."""

    name: str = pydantic.Field(
        pattern=MODEL_NAME, max_length=128, description="Model name in the Triton model repository."
    )
    version: int | None = pydantic.Field(
        None, ge=1, le=2_147_483_647, description="Model version. Unset: the newest in the repository."
    )
    repository: str | None = pydantic.Field(
        None,
        pattern=URI,
        max_length=base.MAX_URI,
        description="URI of the Triton model repository. Unset: the repository built into the image.",
    )
    triton_image: str = pydantic.Field(
        DEFAULT_TRITON_IMAGE, pattern=IMAGE, max_length=512, description="Triton server container image."
    )


class GeneratedInput(base.ApiModel):
    """Work units produced by a seeded generator (synthetic data, known-answer tests)."""

    seed: int = pydantic.Field(0, ge=0, le=2**53, description="Seed; the same seed gives the same units.")
    units: int = pydantic.Field(ge=1, le=MAX_UNITS, description="How many work units to generate.")
    items_per_unit: int = pydantic.Field(1, ge=1, le=1_000_000, description="Items in each unit.")
    parameters: dict[str, ParameterValue] = pydantic.Field(
        default_factory=dict, max_length=32, description="Generator settings, as strings (model-specific)."
    )


class InlineInput(base.ApiModel):
    """A small input written into the job itself."""

    items: list[InlineItem] = pydantic.Field(
        min_length=1,
        max_length=MAX_INLINE_ITEMS,
        description=f"The items, each at most {MAX_ITEM_LENGTH} characters.",
        json_schema_extra=base.list_type("atomic"),
    )
    items_per_unit: int = pydantic.Field(1, ge=1, le=MAX_INLINE_ITEMS, description="Items in each unit.")


class DatasetInput(base.ApiModel):
    """A dataset the workers read: one item per line of the object behind the URI."""

    uri: str = pydantic.Field(pattern=URI, max_length=base.MAX_URI, description="Where the items are.")
    items_per_unit: int = pydantic.Field(100, ge=1, le=1_000_000, description="Items in each unit.")


class Input(base.ApiModel):
    """Where the items come from. Exactly one of generated, inline or dataset."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.rule(
                "(has(self.generated) ? 1 : 0) + (has(self.inline) ? 1 : 0)"
                " + (has(self.dataset) ? 1 : 0) == 1",
                "exactly one of generated, inline or dataset must be set",
            )
        )
    )

    generated: GeneratedInput | None = pydantic.Field(None, description="Units from a seeded generator.")
    inline: InlineInput | None = pydantic.Field(None, description="Items written into the job.")
    dataset: DatasetInput | None = pydantic.Field(None, description="Items read from a URI, one per line.")

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [name for name in ("generated", "inline", "dataset") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"exactly one of generated, inline or dataset must be set (got {given or 'none'})"
            )
        return self


class Output(base.ApiModel):
    """Where results go."""

    uri: str = pydantic.Field(
        pattern=URI,
        max_length=base.MAX_URI,
        description="Result store: a folder URI; each unit's results are one object below it.",
    )


class EligibilityOverrides(base.ApiModel):
    """Stricter eligibility for this job. Can only tighten the owner's policy, never loosen it."""

    min_battery_percent: int | None = pydantic.Field(
        None, ge=1, le=100, description="Battery floor, percent."
    )
    require_charging: bool | None = pydantic.Field(None, description="Only cars that are charging.")
    require_unmetered_network: bool | None = pydantic.Field(
        None, description="Only cars on unmetered networks."
    )
    min_departure_minutes: int | None = pydantic.Field(
        None, ge=0, le=10_080, description="Only cars predicted to stay at least this long, minutes."
    )


class Placement(base.ApiModel):
    """Which cars may run the job, and how many at once."""

    accelerators: list[Annotated[str, pydantic.StringConstraints(max_length=base.MAX_NAME)]] = pydantic.Field(
        default_factory=list,
        max_length=16,
        description="Accelerator families allowed (VehicleNode spec.hardware.accelerator). Empty: any.",
        json_schema_extra=base.list_type("set"),
    )
    regions: list[Annotated[str, pydantic.StringConstraints(max_length=base.MAX_NAME)]] = pydantic.Field(
        default_factory=list,
        max_length=64,
        description="Regions allowed (VehicleNode status.region). Empty: any.",
        json_schema_extra=base.list_type("set"),
    )
    min_tops: int | None = pydantic.Field(None, ge=1, le=100_000, description="Smallest accelerator, TOPS.")
    max_cars: int = pydantic.Field(100, ge=1, le=100_000, description="Most cars working on the job at once.")
    max_units_per_car: int = pydantic.Field(1, ge=1, le=64, description="Most units one car holds at once.")
    eligibility: EligibilityOverrides | None = pydantic.Field(
        None, description="Stricter eligibility than the owners' policies."
    )


class Redundancy(base.ApiModel):
    """How many cars compute each unit and how many must agree (results from untrusted cars)."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=base.validations(
            base.rule("self.quorum <= self.replicas", "quorum must not exceed replicas", field_path=".quorum")
        )
    )

    replicas: int = pydantic.Field(1, ge=1, le=9, description="Cars that compute each unit.")
    quorum: int = pydantic.Field(1, ge=1, le=9, description="Matching results needed to accept a unit.")
    tolerance: float = pydantic.Field(
        0, ge=0, le=1, description="Largest absolute difference between numbers that still match. 0: exact."
    )
    distinct_owners: bool = pydantic.Field(True, description="Replicas of one unit go to different owners.")
    adaptive: bool = pydantic.Field(
        True,
        description="With replicas > 1: a unit first leased to a car trusted on this model runs once "
        "(spotCheckPercent of them still run replicas times).",
    )
    trust_after: int = pydantic.Field(
        10, ge=1, le=1000, description="Valid results in a row (on this model) that make a car trusted."
    )
    spot_check_percent: int = pydantic.Field(
        5, ge=0, le=100, description="Share of a trusted car's units that are still replicated, percent."
    )
    probe_percent: int = pydantic.Field(
        2,
        ge=0,
        le=50,
        description="Share of leases that re-run an already verified unit to check the car, percent.",
    )
    quarantine_after: int = pydantic.Field(
        2,
        ge=1,
        le=100,
        description="Outvoted results that quarantine a car (one wrong check result always does).",
    )

    @pydantic.field_validator("quorum")
    @classmethod
    def _quorum_fits(cls, quorum: int, info: pydantic.ValidationInfo) -> int:
        replicas = info.data.get("replicas")
        if replicas is not None and quorum > replicas:
            raise ValueError(f"quorum ({quorum}) must not exceed replicas ({replicas})")
        return quorum


class DeparturePolicy(StrEnum):
    """What happens to a car's units when it drives away. Migrate: they go back to pending at
    once and other cars get them. WaitForDeadline: they stay leased until their deadline, for
    cars back from a short errand. FailAttempt: the attempt fails and uses up one of maxAttempts."""

    MIGRATE = "Migrate"
    WAIT_FOR_DEADLINE = "WaitForDeadline"
    FAIL_ATTEMPT = "FailAttempt"


class InferenceJobSpec(base.ApiModel):
    """What to run, on what, where results go, and on which cars."""

    model: Model = pydantic.Field(
        description="The Triton model. Immutable.", json_schema_extra=base.immutable("model")
    )
    input: Input = pydantic.Field(
        description="The items, cut into work units. Immutable.", json_schema_extra=base.immutable("input")
    )
    output: Output = pydantic.Field(
        description="Where results go. Immutable.", json_schema_extra=base.immutable("output")
    )
    placement: Placement = pydantic.Field(default_factory=Placement, description="Which cars, how many.")
    redundancy: Redundancy = pydantic.Field(
        default_factory=Redundancy,
        description="Replication and quorum per unit. Immutable.",
        json_schema_extra=base.immutable("redundancy"),
    )
    unit_timeout_seconds: int = pydantic.Field(
        600,
        ge=1,
        le=86_400,
        description="Seconds a car has to finish a unit; then the unit goes to another car.",
    )
    max_attempts: int = pydantic.Field(
        3,
        ge=1,
        le=20,
        description="Failed attempts per unit (per replica), each by a different car, before the unit fails. "
        "A car that failed a unit never gets it again.",
    )
    priority: int = pydantic.Field(
        0, ge=-100, le=100, description="Higher-priority jobs get eligible cars first."
    )
    on_node_departure: DeparturePolicy = pydantic.Field(
        DeparturePolicy.MIGRATE,
        description="What happens to a car's units when it drives away. Migrate: other cars get them "
        "at once. WaitForDeadline: they stay leased until their deadline, for cars back from a short "
        "errand. FailAttempt: the attempt fails and uses up one of maxAttempts.",
    )


# -- status ------------------------------------------------------------------------------
class UnitCounts(base.ApiModel):
    """Work units by state. pending + running + succeeded + failed = total."""

    total: int = pydantic.Field(0, ge=0, le=MAX_UNITS, description="All units of the job.")
    pending: int = pydantic.Field(0, ge=0, le=MAX_UNITS, description="Waiting for a car.")
    running: int = pydantic.Field(0, ge=0, le=MAX_UNITS, description="Leased to a car.")
    succeeded: int = pydantic.Field(0, ge=0, le=MAX_UNITS, description="Done, with an accepted result.")
    failed: int = pydantic.Field(0, ge=0, le=MAX_UNITS, description="Out of attempts.")


def progress_text(units: UnitCounts) -> str:
    """``"45%"``: succeeded units as a share of all, rounded down (100% only when all are done)."""
    return f"{units.succeeded * 100 // units.total if units.total else 0}%"


def completions_text(units: UnitCounts) -> str:
    """``"450/1000"``: succeeded of total units, like a Job's COMPLETIONS column."""
    return f"{units.succeeded}/{units.total}"


class InferenceJobStatus(base.ApiModel):
    """How far the job got. Written by the operator only, as a throttled summary of its ledger."""

    units: UnitCounts = pydantic.Field(default_factory=UnitCounts, description="Work units by state.")
    completed_units: str = pydantic.Field(
        "",
        pattern=r"^[0-9,-]*$",
        max_length=65_536,
        description="Indexes of succeeded units in interval notation, for example 0-99,105.",
    )
    progress: str = pydantic.Field(
        "0%", pattern=r"^[0-9]{1,3}%$", max_length=4, description="Succeeded units, percent."
    )
    completions: str = pydantic.Field(
        "0/0", pattern=r"^[0-9]+/[0-9]+$", max_length=32, description="Succeeded/total units."
    )
    cars_in_use: int = pydantic.Field(0, ge=0, le=100_000, description="Cars holding units of this job now.")
    departures_handled: int = pydantic.Field(
        0, ge=0, description="Times a car left and its units were moved."
    )
    reruns: int = pydantic.Field(
        0,
        ge=0,
        description="Attempts that ended without a result (car left, deadline, error): work done again.",
    )
    results: int = pydantic.Field(
        0, ge=0, description="Results cars sent, replicas and check units included."
    )
    verified_units: int = pydantic.Field(
        0, ge=0, description="Units whose result an independent car confirmed (redundancy.replicas > 1)."
    )
    start_time: datetime | None = pydantic.Field(None, description="When the first unit was leased.")
    completion_time: datetime | None = pydantic.Field(None, description="When the job succeeded or failed.")
    conditions: list[conds.Condition] = conds.list_field("Running, Succeeded (the summary) and Failed.")


# -- the resource ------------------------------------------------------------------------
def _succeeded(field: str) -> str:
    return f'.status.conditions[?(@.type=="{conds.SUCCEEDED}")].{field}'


class InferenceJob(base.Resource):
    """Batch inference cut into work units and run on parked cars."""

    crd: ClassVar[base.CrdInfo] = base.CrdInfo(
        kind="InferenceJob",
        plural="inferencejobs",
        short_names=("ij",),
        scope="Namespaced",
        selectable_fields=(".spec.model.name",),
        printer_columns=(
            base.PrinterColumn("Status", _succeeded("reason"), "string", "Why the job is where it is."),
            base.PrinterColumn("Progress", ".status.progress", "string", "Succeeded units, percent."),
            base.PrinterColumn("Units", ".status.completions", "string", "Succeeded/total units."),
            base.PrinterColumn("Cars", ".status.carsInUse", "integer", "Cars working on the job now."),
            base.PrinterColumn("Age", ".metadata.creationTimestamp", "date", "Time since creation."),
            base.PrinterColumn("Model", ".spec.model.name", "string", "Triton model.", priority=1),
            base.PrinterColumn("Message", _succeeded("message"), "string", "What is going on.", priority=1),
        ),
    )

    api_version: Literal["curbside.dev/v1alpha1"] = "curbside.dev/v1alpha1"
    kind: Literal["InferenceJob"] = "InferenceJob"
    spec: InferenceJobSpec = pydantic.Field(
        description="What to run, on what, where results go, on which cars."
    )
    status: InferenceJobStatus = pydantic.Field(
        default_factory=InferenceJobStatus, description="How far the job got. Written by the operator only."
    )
