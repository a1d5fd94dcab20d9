"""Table tests for judging one car: liveness, eligibility, and what to write (or not)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml

from curbside_api import conditions as conds
from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator.reconcile import vehiclenode as car
from tests.support.cars import BASE_TAINT, GRACE, NOW, REPO, applied, lease, make_car, node


@pytest.mark.parametrize(
    ("status", "lease_age", "want_ready", "want_reasons"),
    [
        ({}, 2, conds.Status.TRUE, []),
        ({"state": "Driving", "charging": False}, 2, conds.Status.TRUE, ["NotParked"]),
        ({}, 25, conds.Status.FALSE, ["LeaseExpired"]),
        ({}, None, conds.Status.FALSE, ["LeaseExpired"]),
        ({"batteryPercent": 30}, 2, conds.Status.TRUE, ["BatteryLow"]),
        ({"network": "Metered"}, 2, conds.Status.TRUE, ["MeteredNetwork"]),
    ],
    ids=["charging-eligible", "driving", "lease-stale", "never-reported", "battery-low", "metered"],
)
def test_readiness_and_eligibility(
    status: dict[str, Any], lease_age: float | None, want_ready: conds.Status, want_reasons: list[str]
) -> None:
    plan = car.reconcile_car(make_car(**status), lease=lease(lease_age), node=node(), now=NOW, grace=GRACE)
    assert plan.status_patch is not None
    written = plan.status_patch["status"]
    assert written["operator"]["reasons"] == want_reasons
    assert written["operator"]["eligible"] is (not want_reasons)
    ready = next(c for c in written["conditions"] if c["type"] == conds.READY)
    assert ready["status"] == want_ready.value
    assert ready["observedGeneration"] == 3
    assert set(written) == {"operator", "conditions"}  # never an agent-owned field


def test_unchanged_car_writes_nothing_second_time() -> None:
    vehicle = make_car()
    first = car.reconcile_car(vehicle, lease=lease(2), node=node(eligible="false"), now=NOW, grace=GRACE)
    assert first.status_patch is not None
    assert first.node_patch == {"metadata": {"labels": {car.ELIGIBLE_LABEL: "true"}}}
    again = car.reconcile_car(
        applied(vehicle, first.status_patch),
        lease=lease(5),
        node=node(eligible="true"),
        now=NOW + timedelta(seconds=3),
        grace=GRACE,
    )
    assert again.status_patch is None
    assert again.node_patch is None


def test_driving_car_gets_noexecute_taint_and_keeps_other_taints() -> None:
    plan = car.reconcile_car(
        make_car(state="Driving", charging=False),
        lease=lease(1),
        node=node(eligible="true"),
        now=NOW,
        grace=GRACE,
    )
    assert plan.node_patch is not None
    taints = plan.node_patch["spec"]["taints"]
    assert BASE_TAINT in taints
    assert {"key": car.DRIVING_TAINT_KEY, "value": "true", "effect": "NoExecute"} in taints
    assert plan.node_patch["metadata"]["labels"] == {car.ELIGIBLE_LABEL: None}  # removed


@pytest.mark.parametrize(
    ("label", "eligible", "want"),
    [
        (None, False, None),  # never eligible (or not judged yet): no Node write at all
        (None, True, {car.ELIGIBLE_LABEL: "true"}),
        ("true", True, None),
        ("true", False, {car.ELIGIBLE_LABEL: None}),
        ("false", False, {car.ELIGIBLE_LABEL: None}),  # an older operator's label goes, once
        ("false", True, {car.ELIGIBLE_LABEL: "true"}),
    ],
)
def test_the_eligible_label_is_there_only_while_the_car_is_eligible(
    label: str | None, eligible: bool, want: dict[str, Any] | None
) -> None:
    patch = car.desired_node(node(eligible=label), driving=False, eligible=eligible)
    assert (patch or {}).get("metadata", {}).get("labels") == want


def test_parked_again_removes_driving_taint() -> None:
    plan = car.reconcile_car(
        make_car(), lease=lease(1), node=node(driving=True, eligible="true"), now=NOW, grace=GRACE
    )
    assert plan.node_patch == {"spec": {"taints": [BASE_TAINT]}}


def test_silent_car_is_not_tainted_driving() -> None:
    plan = car.reconcile_car(make_car(state="Driving"), lease=lease(60), node=node(), now=NOW, grace=GRACE)
    assert plan.node_patch is None
    assert plan.reasons == (vn.IneligibleReason.LEASE_EXPIRED,)


def test_partition_freezes_stale_cars_but_not_fresh_ones() -> None:
    stale = car.reconcile_car(
        make_car(), lease=lease(60), node=node(), now=NOW, grace=GRACE, partition_suspected=True
    )
    assert stale.status_patch is None
    assert stale.node_patch is None
    fresh = car.reconcile_car(
        make_car(), lease=lease(1), node=node(), now=NOW, grace=GRACE, partition_suspected=True
    )
    assert fresh.status_patch is not None


def test_transition_time_moves_only_on_flip() -> None:
    vehicle = make_car()
    first = car.reconcile_car(vehicle, lease=lease(1), node=None, now=NOW, grace=GRACE)
    vehicle = applied(vehicle, first.status_patch)
    later = NOW + timedelta(seconds=30)
    stale = car.reconcile_car(vehicle, lease=lease(31), node=None, now=later, grace=GRACE)
    assert stale.status_patch is not None
    ready = next(c for c in stale.status_patch["status"]["conditions"] if c["type"] == conds.READY)
    eligible_cond = next(c for c in stale.status_patch["status"]["conditions"] if c["type"] == conds.ELIGIBLE)
    assert ready["lastTransitionTime"].startswith("2026-11-28T23:00:30")
    assert eligible_cond["reason"] == "LeaseExpired"


@pytest.mark.parametrize(
    ("annotations", "want"),
    [
        ({car.VIN_ANNOTATION: "5YJ3E1EA7KF317001", car.OWNER_ANNOTATION: "owner-1"}, True),
        ({car.VIN_ANNOTATION: "5YJ3E1EA7KF317001"}, False),
        ({car.VIN_ANNOTATION: "not-a-vin", car.OWNER_ANNOTATION: "owner-1"}, False),
        ({}, False),
    ],
    ids=["identity", "no-owner", "bad-vin", "nothing"],
)
def test_enrollment_needs_a_valid_identity(annotations: dict[str, str], want: bool) -> None:
    labels = {car.ACCELERATOR_LABEL: "hw4", car.TOPS_LABEL: "144"}
    body = car.enrollment_body("car-00001", labels=labels, annotations=annotations)
    assert (body is not None) is want
    if body is not None:
        parsed = vn.VehicleNode.from_body(body)
        assert parsed.spec.hardware.tops == 144


def test_silent_car_is_written_once_not_every_sweep() -> None:
    vehicle = make_car()
    first = car.reconcile_car(vehicle, lease=lease(30), node=None, now=NOW, grace=GRACE)
    assert first.status_patch is not None
    later = car.reconcile_car(
        applied(vehicle, first.status_patch),
        lease=lease(30),
        node=None,
        now=NOW + timedelta(minutes=1),
        grace=GRACE,
    )
    assert later.status_patch is None


@pytest.mark.parametrize(
    ("first", "then", "writes"),
    [
        ({"batteryPercent": 30}, {"batteryPercent": 28}, False),  # still BatteryLow: only the figure moved
        ({"batteryPercent": 30}, {"batteryPercent": 90}, True),  # eligible again
        ({"network": "Metered"}, {"network": "None"}, True),  # another reason
    ],
    ids=["message-only", "flip", "other-reason"],
)
def test_a_message_alone_changing_is_not_written(
    first: dict[str, Any], then: dict[str, Any], writes: bool
) -> None:
    vehicle = make_car(**first)
    plan = car.reconcile_car(vehicle, lease=lease(2), node=node(), now=NOW, grace=GRACE)
    stored = applied(vehicle, plan.status_patch)
    body = stored.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["status"].update(then)
    later = car.reconcile_car(
        vn.VehicleNode.from_body(body),
        lease=lease(-58),  # renewed 2 s before the later look
        node=node(),
        now=NOW + timedelta(minutes=1),
        grace=GRACE,
    )
    assert (later.status_patch is not None) is writes


def _enrolled(seconds_ago: float, **status: Any) -> vn.VehicleNode:
    """A car the operator enrolled ``seconds_ago``, with ``status`` (none: never reported)."""
    body = yaml.safe_load((REPO / "examples" / "01-vehiclenode.yaml").read_text())
    body["metadata"]["creationTimestamp"] = (NOW - timedelta(seconds=seconds_ago)).isoformat()
    body["status"] = status
    return vn.VehicleNode.from_body(body)


@pytest.mark.parametrize("lease_age", [None, 2], ids=["no-lease", "lease-fresh"])
def test_a_car_just_enrolled_and_not_yet_heard_from_gets_no_status_write(lease_age: float | None) -> None:
    plan = car.reconcile_car(_enrolled(5), lease=lease(lease_age), node=node(), now=NOW, grace=GRACE)
    assert (plan.status_patch, plan.node_patch, plan.eligible) == (None, None, False)


def test_a_car_just_enrolled_loses_an_eligible_label_left_from_before() -> None:
    plan = car.reconcile_car(_enrolled(5), lease=None, node=node(eligible="true"), now=NOW, grace=GRACE)
    assert plan.status_patch is None
    assert plan.node_patch == {"metadata": {"labels": {car.ELIGIBLE_LABEL: None}}}


def test_a_car_silent_for_the_grace_after_enrollment_gets_its_never_reported_verdict() -> None:
    plan = car.reconcile_car(_enrolled(21), lease=None, node=node(), now=NOW, grace=GRACE)
    assert plan.status_patch is not None
    ready = next(c for c in plan.status_patch["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "NeverReported"
    assert plan.status_patch["status"]["operator"]["reasons"] == ["LeaseExpired"]


def test_a_car_just_enrolled_that_reported_is_judged_at_once() -> None:
    reported = {
        "state": "Charging",
        "batteryPercent": 80,
        "charging": True,
        "network": "Unmetered",
        "observedAt": (NOW - timedelta(seconds=1)).isoformat(),
    }
    plan = car.reconcile_car(_enrolled(5, **reported), lease=lease(2), node=node(), now=NOW, grace=GRACE)
    assert plan.eligible
    assert plan.status_patch is not None
    assert plan.node_patch == {"metadata": {"labels": {car.ELIGIBLE_LABEL: "true"}}}
