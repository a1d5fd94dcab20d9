"""Our own write's answer and the watch's events race; the newer version must win.

A car reports Charging while the operator's status write for it is in flight. If the report
lands after the write, its watch event (newer) can reach the operator before the write's
answer (older). The operator must keep the report: taking the answer instead would forget it,
and the car would stay ineligible until it next reported.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml

from curbside_operator import settings
from curbside_operator.controllers import fleet as fleet_runtime
from curbside_operator.controllers.job_state import JobState
from curbside_operator.reconcile import vehiclenode as car
from tests.support.cars import NAME, NOW, REPO, lease, node
from tests.support.cars import car_body as body


def node_body(version: int, *labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": NAME, "resourceVersion": str(version), "labels": dict.fromkeys(labels, "true")},
        "spec": {"taints": []},
    }


def state_with_driving_car() -> fleet_runtime.FleetState:
    state = fleet_runtime.FleetState(settings.OperatorConfig(), clock=lambda: NOW)
    state.car_event("ADDED", NAME, body(10, state="Driving", charging=False))
    state.leases[NAME] = lease(1)  # type: ignore[assignment]
    state.nodes[NAME] = node(driving=True)  # as a driving car's Node is: tainted, not labelled
    state.take_dirty()
    return state


def test_a_report_that_lands_while_our_write_is_in_flight_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    state = state_with_driving_car()

    async def write(_client: Any, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        state.car_event("MODIFIED", name, body(12))  # the agent's report (Charging), landed second
        return body(11, state="Driving", charging=False)  # our write, landed first, answered last

    monkeypatch.setattr(fleet_runtime.kube, "patch_vehiclenode_status", write)
    monkeypatch.setattr(fleet_runtime.kube, "patch_node", _unused)
    loop = fleet_runtime.FleetLoop(state, client=None)  # type: ignore[arg-type]
    asyncio.run(loop._reconcile(NAME))
    held = state.cars[NAME]
    assert (held.metadata.resource_version, str(held.status.state)) == ("12", "Charging")
    assert NAME in state.dirty  # and the report is looked at again
    plan = car.reconcile_car(held, lease=lease(1), node=node(), now=NOW, grace=state.config.car_lease_grace)
    assert plan.status_patch is not None
    assert plan.status_patch["status"]["operator"]["eligible"] is True


def test_a_write_answer_newer_than_what_is_held_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    state = state_with_driving_car()
    state.write_answered(NAME, body(11))
    assert state.cars[NAME].metadata.resource_version == "11"
    state.car_event("MODIFIED", NAME, body(10, state="Driving", charging=False))  # late, older event
    assert str(state.cars[NAME].status.state) == "Charging"


def test_a_node_answer_older_than_the_nodes_latest_event_is_dropped() -> None:
    state = state_with_driving_car()
    state.node_event("MODIFIED", NAME, node_body(20, "curbside.dev/vehicle", "curbside.dev/eligible"))
    state.node_answered(NAME, node_body(19, "curbside.dev/vehicle"))
    assert "curbside.dev/eligible" in state.nodes[NAME].labels
    state.node_answered(NAME, node_body(21, "curbside.dev/vehicle"))
    assert "curbside.dev/eligible" not in state.nodes[NAME].labels
    state.node_event("MODIFIED", NAME, node_body(20, "curbside.dev/vehicle", "curbside.dev/eligible"))
    assert "curbside.dev/eligible" not in state.nodes[NAME].labels  # the late event is older


def test_a_job_edit_newer_than_our_status_writes_answer_is_kept() -> None:
    job = yaml.safe_load((REPO / "examples" / "02-minimal-inferencejob.yaml").read_text())
    job["metadata"].update(namespace="team-a", resourceVersion="31")
    state = JobState()
    state.job_event("MODIFIED", job)  # the user's edit
    answer = {**job, "metadata": {**job["metadata"], "resourceVersion": "30"}}
    state.job_event("MODIFIED", answer)  # our status write's answer, older
    key = ("team-a", job["metadata"]["name"])
    assert state.jobs[key].metadata.resource_version == "31"


async def _unused(*_: Any) -> Any:
    raise AssertionError("no Node write expected")
