"""Cars as the operator's tests build them: a VehicleNode from the example, its Lease and Node
as the fleet loop sees them, and the raw bodies a watch delivers.

The clock is fixed (``NOW``, a Saturday night inside the example's charging windows) so a car
built here is fresh, parked and eligible unless a test says otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator.reconcile import vehiclenode as car

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
GRACE = timedelta(seconds=20)
BASE_TAINT = {"key": "curbside.dev/vehicle", "value": "true", "effect": "NoSchedule"}
NAME = "car-00001"


def example_body() -> dict[str, Any]:
    """``examples/01-vehiclenode.yaml`` as a dict."""
    body: dict[str, Any] = yaml.safe_load((REPO / "examples" / "01-vehiclenode.yaml").read_text())
    return body


def make_car(**status: Any) -> vn.VehicleNode:
    """The example car, charging and reported a second ago; ``status`` overrides fields."""
    body = example_body()
    body["metadata"]["generation"] = 3
    body["status"] = {
        "state": "Charging",
        "batteryPercent": 80,
        "charging": True,
        "network": "Unmetered",
        "observedAt": (NOW - timedelta(seconds=1)).isoformat(),
        **status,
    }
    return vn.VehicleNode.from_body(body)


def lease(age_seconds: float | None) -> car.LeaseView | None:
    """A Lease renewed ``age_seconds`` before ``NOW`` (None: the car has none)."""
    if age_seconds is None:
        return None
    return car.LeaseView(renew_time=NOW - timedelta(seconds=age_seconds))


def node(*, driving: bool = False, eligible: str | None = None) -> car.NodeView:
    """The car's Node: the vehicle taint, the driving taint if ``driving``, the eligible label."""
    taints = [BASE_TAINT] + (
        [{"key": car.DRIVING_TAINT_KEY, "value": "true", "effect": "NoExecute"}] if driving else []
    )
    labels = {"curbside.dev/vehicle": "true"} | ({car.ELIGIBLE_LABEL: eligible} if eligible else {})
    return car.NodeView(taints=tuple(taints), labels=labels)


def applied(vehicle: vn.VehicleNode, patch: dict[str, Any] | None) -> vn.VehicleNode:
    """The car after the API server applied the status ``patch`` (unchanged for None)."""
    if patch is None:
        return vehicle
    body = vehicle.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["status"].update(patch["status"])
    return vn.VehicleNode.from_body(body)


def car_body(version: int, **status: Any) -> dict[str, Any]:
    """``make_car(**status)`` as a watch delivers it: car ``NAME`` at ``resourceVersion``."""
    out = make_car(**status).model_dump(mode="json", by_alias=True, exclude_none=True)
    out["metadata"].update(name=NAME, resourceVersion=str(version))
    return out
