"""One car, judged: is it alive, may it compute, and what must Kubernetes show about it?

Why this exists: the operator's fleet side is level-based. Whatever event woke it (the car's
status changed, its Lease was renewed or went stale, its Node was edited, a periodic sweep),
it asks this pure function for the car's desired operator-owned status and Node markings and
writes only the difference. ``now`` is a parameter, so table tests drive the clock.

Rules:

* **Liveness** comes from the car's Lease (``curbside-cars/<car>``), never from a ticking
  status field: older than ``grace`` means ``Ready=False, reason=LeaseExpired`` and the
  ``LeaseExpired`` ineligibility reason. No Lease yet means ``NeverReported``.
* While the fleet looks partitioned from the control plane (most cars silent at once, see
  ``fleet.assess``), stale Leases are *not* acted on: nothing is written for those cars, so a
  partition does not look like every car leaving.
* **Eligibility** is the owner's policy applied to what the car reported (``api.policy``),
  with the car's previous eligibility as the hysteresis memory.
* **Trust and credit** come from the ledger's record of the car (``trust``/``credit``); a
  quarantined car is ineligible (``Quarantined`` first among the reasons) until lifted.
* **A car just enrolled** that has not reported yet (no report, no verdict, created less than
  ``grace`` ago) gets no status write: its verdict would be ``NeverReported`` and its first
  report replaces it seconds later. When a whole fleet enrolls at once (an operator's first
  start on 10,000 cars) those writes were almost half of the operator's and delayed the
  verdicts of the cars that had reported. After ``grace`` a car still silent gets its verdict.
* **Node markings**: a driving car gets the ``curbside.dev/driving:NoExecute`` taint so
  nothing can stay on it; an eligible car's Node has the label ``curbside.dev/eligible=true``,
  any other car's has none. Other taints and labels are left exactly as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from curbside_api import base, policy
from curbside_api import conditions as conds
from curbside_api.v1alpha1 import vehiclenode as vn

DRIVING_TAINT_KEY = "curbside.dev/driving"
ELIGIBLE_LABEL = "curbside.dev/eligible"
MANAGED_TAINTS = frozenset({DRIVING_TAINT_KEY})

REASON_PARTITION = "ControlPlanePartitionSuspected"


@dataclasses.dataclass(frozen=True)
class LeaseView:
    """What the operator knows of a car's Lease: when it was last renewed. Freshness is judged
    against the operator's own grace (``car_lease_grace``), not the Lease's duration, so that
    is not kept."""

    renew_time: datetime | None


@dataclasses.dataclass(frozen=True)
class NodeView:
    """The parts of a car's Node the operator manages."""

    taints: tuple[Mapping[str, str], ...]
    labels: Mapping[str, str]
    resource_version: str | None = dataclasses.field(default=None, compare=False)
    """Which version of the Node this is (to keep a newer one); not part of equality."""


@dataclasses.dataclass(frozen=True)
class CarPlan:
    """What to write for one car; ``None`` means write nothing."""

    status_patch: dict[str, Any] | None
    node_patch: dict[str, Any] | None
    ready: bool
    eligible: bool
    reasons: tuple[vn.IneligibleReason, ...]


def lease_fresh(lease: LeaseView | None, *, now: datetime, grace: timedelta) -> bool:
    return lease is not None and lease.renew_time is not None and now - lease.renew_time <= grace


def _readiness(lease: LeaseView | None, *, now: datetime, grace: timedelta) -> tuple[conds.Status, str, str]:
    if lease is None or lease.renew_time is None:
        return conds.Status.FALSE, conds.REASON_NEVER_REPORTED, "The car's agent has not renewed a Lease yet."
    if now - lease.renew_time > grace:
        # A stable message (a timestamp, not an age) so a silent car is written once, not per sweep.
        last = lease.renew_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            conds.Status.FALSE,
            conds.REASON_LEASE_EXPIRED,
            f"The car's Lease was last renewed at {last} (grace {grace.total_seconds():.0f}s).",
        )
    return conds.Status.TRUE, conds.REASON_AGENT_REPORTING, "The car's agent renews its Lease."


def desired_node(node: NodeView, *, driving: bool, eligible: bool) -> dict[str, Any] | None:
    """A merge patch for the Node's taints and labels, or None when they already match."""
    keep = [dict(t) for t in node.taints if t.get("key") not in MANAGED_TAINTS]
    want = keep + ([{"key": DRIVING_TAINT_KEY, "value": "true", "effect": "NoExecute"}] if driving else [])
    current = [dict(t) for t in node.taints]
    patch: dict[str, Any] = {}
    if _taint_keys(want) != _taint_keys(current):
        patch["spec"] = {"taints": want}
    # The label is there only while the car is eligible: a car that never was (or one not
    # judged yet) costs no Node write, which at 10,000 freshly enrolled cars is 10,000 writes.
    has = node.labels.get(ELIGIBLE_LABEL)
    if eligible and has != "true":
        patch["metadata"] = {"labels": {ELIGIBLE_LABEL: "true"}}
    elif not eligible and has is not None:
        patch["metadata"] = {"labels": {ELIGIBLE_LABEL: None}}  # a merge patch's null removes it
    return patch or None


def _taint_keys(taints: list[dict[str, str]]) -> set[tuple[str, str, str]]:
    return {(t.get("key", ""), t.get("value", ""), t.get("effect", "")) for t in taints}


def _meaning(conditions: list[conds.Condition], op: vn.OperatorStatus) -> tuple[Any, ...]:
    """What a status says, messages aside: a message alone (a battery figure, the local time in
    "outside every time window") changing is no reason to write; it rides along with the next
    real change. At 10,000 cars, rewriting messages would cost thousands of writes a minute."""
    return (
        sorted((c.type, c.status, c.reason, c.observed_generation) for c in conditions),
        op.eligible,
        tuple(op.reasons),
        op.trust.model_dump(),
        op.credit.model_dump(),
    )


def reconcile_car(
    car: vn.VehicleNode,
    *,
    lease: LeaseView | None,
    node: NodeView | None,
    now: datetime,
    grace: timedelta,
    partition_suspected: bool = False,
    expected_unit_seconds: float = 600.0,
    trust: vn.Trust | None = None,
    credit: vn.Credit | None = None,
) -> CarPlan:
    """The desired operator-owned status and Node markings for one car. ``trust`` and ``credit``
    (None: keep what the status says) are the ledger's record of the car."""
    before = car.status.operator or vn.OperatorStatus()
    trust, credit = trust or before.trust, credit or before.credit
    fresh = lease_fresh(lease, now=now, grace=grace)
    if not fresh and partition_suspected:
        # Hold still: a silent majority is more likely our partition than their departure.
        return CarPlan(None, None, ready=False, eligible=before.eligible, reasons=tuple(before.reasons))

    if _just_enrolled(car, now=now, grace=grace):  # but a label from the car's past life goes
        node_patch = desired_node(node, driving=False, eligible=False) if node is not None else None
        return CarPlan(None, node_patch, ready=fresh, eligible=False, reasons=())
    ready_status, ready_reason, ready_message = _readiness(lease, now=now, grace=grace)
    if fresh:
        verdict = policy.evaluate_status(
            car.spec.policy,
            car.status,
            computing=before.eligible,
            now=now,
            expected_unit_seconds=expected_unit_seconds,
        )
        reasons, message = verdict.reasons, verdict.message
    else:
        reasons, message = (vn.IneligibleReason.LEASE_EXPIRED,), ready_message
    if trust.level == vn.TrustLevel.QUARANTINED:
        reasons = (vn.IneligibleReason.QUARANTINED, *reasons)
        message = (f"Quarantined: {trust.quarantine_reason}. " + message).strip()[: base.MAX_MESSAGE]
    eligible = not reasons

    conditions = [c.model_copy() for c in car.status.conditions]
    generation = car.metadata.generation or 0
    changed = conds.set_condition(
        conditions,
        type=conds.READY,
        status=ready_status,
        reason=ready_reason,
        message=ready_message,
        generation=generation,
        now=now,
    )
    changed |= conds.set_condition(
        conditions,
        type=conds.ELIGIBLE,
        status=conds.Status.TRUE if eligible else conds.Status.FALSE,
        reason=conds.REASON_POLICY_SATISFIED if eligible else reasons[0].value,
        message="The owner's policy allows work now." if eligible else message,
        generation=generation,
        now=now,
    )
    after = before.model_copy(
        update={
            "eligible": eligible,
            "reasons": list(reasons),
            "message": message,
            "trust": trust,
            "credit": credit,
        }
    )
    status_patch: dict[str, Any] | None = None
    if (changed or after != before) and _meaning(conditions, after) != _meaning(
        car.status.conditions, before
    ):
        status_patch = {
            "status": {
                "operator": after.model_dump(mode="json", by_alias=True, exclude_none=True),
                "conditions": [
                    c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in conditions
                ],
            }
        }
    driving = fresh and car.status.state == vn.VehicleState.DRIVING
    node_patch = desired_node(node, driving=driving, eligible=eligible) if node is not None else None
    return CarPlan(status_patch, node_patch, ready=fresh, eligible=eligible, reasons=reasons)


def _just_enrolled(car: vn.VehicleNode, *, now: datetime, grace: timedelta) -> bool:
    """Enrolled less than ``grace`` ago, never reported, never judged: nothing to say yet."""
    created = car.metadata.creation_timestamp
    return (
        created is not None
        and now - created < grace
        and car.status.operator is None
        and car.status.observed_at is None
        and car.status.state is None
    )


def next_deadline(lease: LeaseView | None, *, grace: timedelta) -> datetime | None:
    """When this car's Lease goes stale if it is not renewed (for the sweep's timer)."""
    if lease is None or lease.renew_time is None:
        return None
    return lease.renew_time + grace


# -- enrollment ---------------------------------------------------------------------------
VIN_ANNOTATION = "curbside.dev/vin"
OWNER_ANNOTATION = "curbside.dev/owner"
MODEL_ANNOTATION = "curbside.dev/model"
ACCELERATOR_LABEL = "node.kubernetes.io/instance-type"
TOPS_LABEL = "curbside.dev/accelerator-tops"
MEMORY_LABEL = "curbside.dev/accelerator-memory-gib"


def enrollment_body(
    name: str, *, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> dict[str, Any] | None:
    """The VehicleNode for a car Node that has none, or None if the Node lacks an identity.

    A car joins as a Node carrying its VIN and owner as annotations (set at enrollment);
    hardware comes from its labels; the owner's policy starts at the API's defaults.
    """
    vin, owner = annotations.get(VIN_ANNOTATION), annotations.get(OWNER_ANNOTATION)
    if not vin or not owner:
        return None
    body = {
        "apiVersion": "curbside.dev/v1alpha1",
        "kind": "VehicleNode",
        "metadata": {"name": name},
        "spec": {
            "vehicle": {"vin": vin, "model": annotations.get(MODEL_ANNOTATION, "unknown"), "owner": owner},
            "hardware": {
                "accelerator": labels.get(ACCELERATOR_LABEL, "unknown"),
                "tops": int(labels.get(TOPS_LABEL, "1") or 1),
                "memoryGiB": int(labels.get(MEMORY_LABEL, "16") or 16),
            },
        },
    }
    try:
        vn.VehicleNode.from_body(body)
    except base.InvalidSpecError:
        return None
    return body
