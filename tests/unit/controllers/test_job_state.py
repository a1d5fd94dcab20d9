"""``JobState``: what the job loop knows of its pods, from the pod watch's events."""

from __future__ import annotations

from typing import Any

from curbside_operator.controllers.job_state import JobState
from curbside_operator.reconcile import pods


def pod(namespace: str, name: str, *, car: str = "car-00001", phase: str = "Running") -> dict[str, Any]:
    labels = {**pods.MANAGED_BY, pods.JOB_LABEL: "embed", pods.CAR_LABEL: car}
    return {
        "metadata": {"namespace": namespace, "name": name, "labels": labels},
        "spec": {"nodeName": car},
        "status": {"phase": phase},
    }


def test_pods_are_recorded_by_namespace_and_name_and_forgotten_when_gone() -> None:
    state = JobState()
    state.pod_event("ADDED", pod("team-a", "embed-car-00001"))
    state.pod_event("ADDED", pod("team-b", "embed-car-00001", phase="Pending"))
    assert {key: view.phase for key, view in state.pods.items()} == {
        ("team-a", "embed-car-00001"): "Running",
        ("team-b", "embed-car-00001"): "Pending",
    }
    state.wake.clear()
    state.pod_gone("team-a/embed-car-00001")  # a fresh list no longer had it
    assert list(state.pods) == [("team-b", "embed-car-00001")]
    assert state.wake.is_set()
    state.wake.clear()
    state.pod_gone("team-a/embed-car-00001")  # forgotten already: nothing to act on
    assert not state.wake.is_set()
    state.pod_event("DELETED", pod("team-b", "embed-car-00001"))
    assert state.pods == {}


def test_a_car_that_holds_a_pod_wakes_the_loop_when_it_changes_and_others_do_not() -> None:
    state = JobState()
    state.pod_event("ADDED", pod("team-a", "embed-car-00001", car="car-00001"))
    state.pod_event("ADDED", pod("team-b", "embed-car-00001", car="car-00001"))
    state.wake.clear()
    state.car_changed("car-00002")
    assert not state.wake.is_set()
    state.car_changed("car-00001")
    assert state.wake.is_set()
    state.pod_event("DELETED", pod("team-a", "embed-car-00001", car="car-00001"))
    assert state.holding == {"car-00001": 1}  # the other namespace's pod is still there
    state.pod_gone("team-b/embed-car-00001")
    state.wake.clear()
    state.car_changed("car-00001")
    assert not state.wake.is_set()
    assert state.holding == {}
