"""The models parse every example, fill in defaults, and refuse bad bodies naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from curbside_api import base
from curbside_api.v1alpha1 import inferencejob, vehiclenode

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
KINDS: dict[str, type[base.Resource]] = {
    "InferenceJob": inferencejob.InferenceJob,
    "VehicleNode": vehiclenode.VehicleNode,
}

JOB: dict[str, Any] = {
    "apiVersion": "curbside.dev/v1alpha1",
    "kind": "InferenceJob",
    "metadata": {
        "name": "seti",
        "namespace": "demo",
        "generation": 2,
        "managedFields": [{"manager": "kubectl"}],
    },
    "spec": {
        "model": {"name": "seti-spike-search"},
        "input": {"generated": {"units": 10}},
        "output": {"uri": "file:///tmp/out"},
    },
}
CAR: dict[str, Any] = {
    "apiVersion": "curbside.dev/v1alpha1",
    "kind": "VehicleNode",
    "metadata": {"name": "car-00001"},
    "spec": {
        "vehicle": {"vin": "5YJ3E1EA7KF317001", "model": "Model 3", "owner": "owner-1"},
        "hardware": {"accelerator": "hw4", "tops": 144, "memoryGiB": 16},
    },
}


def test_there_are_examples_of_every_kind() -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in EXAMPLES}
    assert kinds == set(KINDS)
    assert [p.name[:3] for p in EXAMPLES] == [f"{i:02d}-" for i in range(1, len(EXAMPLES) + 1)]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_parse_and_round_trip(path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    model = KINDS[body["kind"]].from_body(body)
    again = KINDS[body["kind"]].from_body(model.to_json())
    assert again == model
    # Everything the example says survives parsing (defaults may add more).
    assert _contains(model.to_json()["spec"], body["spec"])


def _contains(big: Any, small: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _contains(big[k], v) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(big) == len(small) and all(map(_contains, big, small))
    return bool(big == small)


def test_minimal_job_gets_the_documented_defaults() -> None:
    job = inferencejob.InferenceJob.from_body(JOB)
    assert job.metadata.name == "seti"
    assert job.metadata.generation == 2
    assert job.spec.redundancy.replicas == 1
    assert job.spec.redundancy.quorum == 1
    assert job.spec.placement.max_cars == 100
    assert job.spec.max_attempts == 3
    assert job.spec.unit_timeout_seconds == 600
    assert job.spec.on_node_departure is inferencejob.DeparturePolicy.MIGRATE
    assert job.spec.model.triton_image == inferencejob.DEFAULT_TRITON_IMAGE
    assert job.status.units.total == 0


def test_car_policy_defaults_have_hysteresis() -> None:
    car = vehiclenode.VehicleNode.from_body(CAR)
    assert car.spec.policy.reserve_battery_percent < car.spec.policy.min_battery_percent
    assert car.spec.hardware.memory_gib == 16
    assert car.status.state is None
    assert "memoryGiB" in car.to_json()["spec"]["hardware"]


def _with(body: dict[str, Any], path: str, *, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return out


_DELETE = object()

BAD = [
    pytest.param(
        JOB,
        "spec.redundancy",
        {"replicas": 2, "quorum": 3},
        "spec.redundancy.quorum",
        id="quorum-over-replicas",
    ),
    pytest.param(JOB, "spec.input", {}, "spec.input", id="no-input-source"),
    pytest.param(JOB, "spec.input.inline", {"items": ["a"]}, "spec.input", id="two-input-sources"),
    pytest.param(JOB, "spec.model", _DELETE, "spec.model", id="missing-model"),
    pytest.param(JOB, "spec.input.generated.units", 0, "spec.input.generated.units", id="zero-units"),
    pytest.param(JOB, "spec.onNodeDeparture", "Teleport", "spec.onNodeDeparture", id="unknown-enum"),
    pytest.param(JOB, "spec.output.uri", "not a uri", "spec.output.uri", id="bad-uri"),
    pytest.param(JOB, "spec.bogus", 1, "spec.bogus", id="unknown-field"),
    pytest.param(JOB, "spec.placement.maxCars", "many", "spec.placement.maxCars", id="wrong-type"),
    pytest.param(
        JOB, "spec.input.inline", {"items": ["a"] * 513}, "spec.input.inline.items", id="too-many-items"
    ),
    pytest.param(
        JOB, "status.completedUnits", "0-9;12", "status.completedUnits", id="bad-interval-characters"
    ),
    pytest.param(
        CAR,
        "spec.policy",
        {"minBatteryPercent": 40, "reserveBatteryPercent": 40},
        "spec.policy.reserveBatteryPercent",
        id="no-hysteresis",
    ),
    pytest.param(
        CAR,
        "spec.policy",
        {"minBatteryPercent": 20},
        "spec.policy.reserveBatteryPercent",
        id="default-reserve-above-start",
    ),
    pytest.param(CAR, "spec.vehicle.vin", "IOQ", "spec.vehicle.vin", id="bad-vin"),
    pytest.param(
        CAR,
        "spec.policy.timeWindows",
        [{"start": "08:00", "end": "08:00"}],
        "spec.policy.timeWindows[0].end",
        id="empty-time-window",
    ),
    pytest.param(
        CAR,
        "spec.policy.timeWindows",
        [{"start": "25:00", "end": "08:00"}],
        "spec.policy.timeWindows[0].start",
        id="bad-clock",
    ),
    pytest.param(CAR, "status.batteryPercent", 101, "status.batteryPercent", id="battery-over-100"),
    pytest.param(CAR, "status.state", "Flying", "status.state", id="unknown-state"),
    pytest.param(
        CAR, "status.operator", {"reasons": ["battery-low"]}, "status.operator.reasons[0]", id="bad-reason"
    ),
    pytest.param(CAR, "apiVersion", "curbside.dev/v2", "apiVersion", id="wrong-version"),
]


@pytest.mark.parametrize(("body", "path", "value", "want_path"), BAD)
def test_bad_bodies_name_the_field(body: dict[str, Any], path: str, value: Any, want_path: str) -> None:
    kind = KINDS[body["kind"]]
    with pytest.raises(base.InvalidSpecError) as caught:
        kind.from_body(_with(body, path, value=value))
    assert want_path in caught.value.paths
    assert str(caught.value).startswith(f"{kind.crd.kind} ")
    assert want_path in str(caught.value)


def test_error_message_names_object_and_explains() -> None:
    with pytest.raises(base.InvalidSpecError) as caught:
        inferencejob.InferenceJob.from_body(_with(JOB, "spec.redundancy", value={"replicas": 2, "quorum": 3}))
    assert str(caught.value) == (
        "InferenceJob demo/seti: spec.redundancy.quorum: quorum (3) must not exceed replicas (2)"
    )


def test_many_errors_are_summarized() -> None:
    body = _with(JOB, "spec", value={f"bogus{i}": i for i in range(8)})
    with pytest.raises(base.InvalidSpecError) as caught:
        inferencejob.InferenceJob.from_body(body)
    assert len(caught.value.errors) == 11  # 8 unknown + 3 missing
    assert str(caught.value).endswith("(and 6 more)")


@pytest.mark.parametrize("body", [None, [], "job", 42], ids=repr)
def test_non_objects_are_refused_cleanly(body: Any) -> None:
    with pytest.raises(base.InvalidSpecError, match="expected an object"):
        inferencejob.InferenceJob.from_body(body)


@pytest.mark.parametrize(
    ("succeeded", "total", "progress", "completions"),
    [
        pytest.param(0, 0, "0%", "0/0", id="empty-job"),
        pytest.param(0, 10, "0%", "0/10", id="nothing-done"),
        pytest.param(450, 1000, "45%", "450/1000", id="partly-done"),
        pytest.param(999, 1000, "99%", "999/1000", id="never-rounds-up-to-100"),
        pytest.param(7, 7, "100%", "7/7", id="done"),
    ],
)
def test_progress_columns(succeeded: int, total: int, progress: str, completions: str) -> None:
    units = inferencejob.UnitCounts(total=total, succeeded=succeeded)
    assert inferencejob.progress_text(units) == progress
    assert inferencejob.completions_text(units) == completions
    # What the operator writes is valid status.
    inferencejob.InferenceJobStatus(units=units, progress=progress, completions=completions)


def test_car_status_fields_have_exactly_one_owner() -> None:
    wire = {f.alias or n for n, f in vehiclenode.VehicleNodeStatus.model_fields.items()}
    agent, operator = set(vehiclenode.AGENT_OWNED), set(vehiclenode.OPERATOR_OWNED)
    assert not agent & operator
    assert agent | operator == wire
