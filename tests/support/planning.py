"""Builders for the job planner's inputs: job views, cars, ledger summaries and pod views.

The planner's table tests (tests/unit/reconcile/test_jobs.py) and the planning-round benchmark
(bench/plan_round.py) build the same inputs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from curbside_api.v1alpha1 import inferencejob as ij
from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator.facts import Summary
from curbside_operator.reconcile import jobs

NOW = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)


def job(
    name: str = "j", *, status: dict[str, Any] | None = None, deleting: bool = False, **spec: Any
) -> jobs.JobView:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "generation": 1,
        "creationTimestamp": "2026-11-26T21:00:00Z",
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-11-26T21:59:00Z"
    body = {
        "apiVersion": "curbside.dev/v1alpha1",
        "kind": "InferenceJob",
        "metadata": meta,
        "spec": {
            "model": {"name": "seti-spike-search"},
            "input": {"generated": {"units": 10}},
            "output": {"uri": "file:///tmp/r"},
            **spec,
        },
        "status": status or {},
    }
    return jobs.JobView(ij.InferenceJob.from_body(body))


def car(
    name: str,
    *,
    state: str = "Charging",
    eligible: bool = True,
    departs_in: float | None = None,
    owner: str | None = None,
    accelerator: str = "hw4",
) -> vn.VehicleNode:
    status: dict[str, Any] = {
        "state": state,
        "batteryPercent": 80,
        "charging": state == "Charging",
        "network": "Unmetered",
        "operator": {"eligible": eligible, "reasons": [] if eligible else ["BatteryLow"]},
    }
    if departs_in is not None:
        status["predictedDeparture"] = {
            "time": (NOW + timedelta(seconds=departs_in)).isoformat(),
            "confidence": 0.9,
        }
    body = {
        "apiVersion": "curbside.dev/v1alpha1",
        "kind": "VehicleNode",
        "metadata": {"name": name},
        "spec": {
            "vehicle": {"vin": "5YJ3E1EA7KF000001", "owner": owner or f"o-{name}", "model": "Model 3"},
            "hardware": {"accelerator": accelerator, "tops": 144, "memoryGiB": 16},
        },
        "status": status,
    }
    return vn.VehicleNode.from_body(body)


def summary(
    total: int = 10,
    *,
    pending: int | None = None,
    running: int = 0,
    succeeded: int = 0,
    failed: int = 0,
    cars: frozenset[str] = frozenset(),
    open_hardware: frozenset[str] | None = None,
) -> Summary:
    if pending is None:
        pending = total - running - succeeded - failed
    done = f"0-{succeeded - 1}" if succeeded else ""
    return Summary(
        total,
        pending,
        running,
        succeeded,
        failed,
        done,
        0,
        cars,
        0,
        running + succeeded,
        open_hardware=open_hardware,
    )


def pod(car_name: str, job_name: str = "j", **kw: Any) -> jobs.PodView:
    return jobs.PodView("ns", f"{job_name}-{car_name}", job_name, car_name, **kw)
