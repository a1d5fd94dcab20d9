"""Status conditions the Kubernetes way, and the one function that changes them.

Why this exists: every controller that hand-rolls conditions gets ``lastTransitionTime``
wrong (bumped on every write, so nobody can tell how long a job has been stuck) or forgets
``observedGeneration`` (so nobody can tell whether the status is about the current spec).
``set_condition`` does it once, following cert-manager's ``SetCertificateCondition`` and
Kueue's ``SyncAdmittedCondition``: the transition time moves only when the status flips,
the generation is always recorded, and it answers "did anything change?" so callers skip
API writes that would change nothing. ``now`` is a parameter, never read from a clock here.

Condition types and reasons are constants below: CamelCase, no hyphens, as api-conventions
ask. Detailed ineligibility reasons for cars are ``vehiclenode.IneligibleReason``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import pydantic

from curbside_api import base


class Status(StrEnum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


# -- VehicleNode condition types ---------------------------------------------------------
READY = "Ready"
"""True: the car's agent renews its Lease. False: the agent reported Offline. Unknown: the
Lease expired or was never renewed (the car may just be out of coverage)."""
ELIGIBLE = "Eligible"
"""True: the car may take work now. False: the reason is the first entry of
``status.operator.reasons``. Unknown: not yet evaluated."""

# -- InferenceJob condition types --------------------------------------------------------
RUNNING = "Running"
"""True: at least one work unit is leased to a car. False: none is (waiting for cars, or done)."""
SUCCEEDED = "Succeeded"
"""The summary. True: every unit succeeded. False: the job failed (see ``Failed``).
Unknown: still working; the message says how far it got."""
FAILED = "Failed"
"""True: the job stopped for good (invalid spec, a unit ran out of attempts). False otherwise."""

# -- Reasons -----------------------------------------------------------------------------
REASON_AGENT_REPORTING = "AgentReporting"
REASON_AGENT_OFFLINE = "AgentOffline"
REASON_LEASE_EXPIRED = "LeaseExpired"
REASON_NEVER_REPORTED = "NeverReported"
REASON_POLICY_SATISFIED = "PolicySatisfied"
REASON_PENDING = "Pending"
REASON_UNITS_RUNNING = "UnitsRunning"
REASON_NO_ELIGIBLE_VEHICLE = "NoEligibleVehicle"
REASON_COMPLETED = "Completed"
REASON_INVALID_SPEC = "InvalidSpec"
REASON_MAX_ATTEMPTS_EXCEEDED = "MaxAttemptsExceeded"

MAX_CONDITIONS = 8


class Condition(base.ApiModel):
    """One aspect of the object's state (metav1.Condition)."""

    type: str = pydantic.Field(
        description="The aspect this condition is about, in CamelCase (for example Ready, Succeeded).",
        pattern=base.CAMEL_CASE,
        max_length=64,
    )
    status: Status = pydantic.Field(description="Whether the condition holds: True, False or Unknown.")
    observed_generation: int = pydantic.Field(
        0,
        ge=0,
        description="The metadata.generation this condition was computed from; older means stale.",
    )
    last_transition_time: datetime = pydantic.Field(
        description="When status last changed (not when the condition was last written)."
    )
    reason: str = pydantic.Field(
        description="Why, as a CamelCase code for programs (for example NoEligibleVehicle).",
        pattern=base.CAMEL_CASE,
        min_length=1,
        max_length=128,
    )
    message: str = pydantic.Field(
        "", max_length=base.MAX_MESSAGE, description="Why, in a sentence for humans. May be empty."
    )


def find(conditions: list[Condition], type: str) -> Condition | None:
    """The condition of ``type``, or None."""
    return next((c for c in conditions if c.type == type), None)


def is_true(conditions: list[Condition], type: str) -> bool:
    found = find(conditions, type)
    return found is not None and found.status is Status.TRUE


def set_condition(
    conditions: list[Condition],
    *,
    type: str,
    status: Status,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> bool:
    """Set the condition of ``type`` in place; return whether anything changed.

    ``lastTransitionTime`` becomes ``now`` (to the second) only when the condition is new or
    its status flips; reason, message and observedGeneration are always brought up to date.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    existing = find(conditions, type)
    if existing is None:
        conditions.append(
            Condition(
                type=type,
                status=status,
                reason=reason,
                message=message,
                observed_generation=generation,
                last_transition_time=now.replace(microsecond=0),
            )
        )
        return True
    if (status, reason, message, generation) == (
        existing.status,
        existing.reason,
        existing.message,
        existing.observed_generation,
    ):
        return False
    flipped = status != existing.status
    conditions[conditions.index(existing)] = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=now.replace(microsecond=0) if flipped else existing.last_transition_time,
    )
    return True


def list_field(description: str) -> Any:
    """The ``conditions`` field of a status: a list keyed by type, as server-side apply expects."""
    none: list[Condition] = []
    return pydantic.Field(
        default_factory=none.copy,
        max_length=MAX_CONDITIONS,
        description=description,
        json_schema_extra=base.list_type("map", "type"),
    )
