"""Cars as the agent tests see them: enrolled test cars, their VehicleNodes, gateway readings.

Why this exists: the agent runs with a real car's identity (``identity.enroll_car``: x509 user
``curbside:car:<car>``, the per-car RBAC and the admission policy from config/rbac), so these
tests also prove that what the agent writes is allowed to a car and nothing more is needed.
The simulator runs as its own process with its own admin identity (``SIMULATOR_USER``), so the
audit log tells its writes apart. The ``car`` fixture (tests/cluster/agent/conftest.py) makes
a ``Car``; ``write_reading`` plays the car's gateway file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
VN = "/apis/curbside.dev/v1alpha1/vehiclenodes"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/curbside-cars/leases"
SIMULATOR_USER = "curbside-simulator"
PARKED = {"gear": "P", "batteryPercent": 80.4, "charging": True, "chargerPowerKw": 11, "network": "unmetered"}
DRIVING = {
    **PARKED,
    "gear": "D",
    "speedKph": 30,
    "charging": False,
    "chargerPowerKw": 0,
    "network": "metered",
}


def write_reading(path: Path, doc: dict[str, Any]) -> float:
    """Replace the gateway's file atomically (as a gateway must); the wall time it changed."""
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps({"timestamp": datetime.now(UTC).isoformat(), **doc}))
    os.replace(scratch, path)
    return datetime.now(UTC).timestamp()


@dataclass
class Car:
    """A test car: enrolled (its own kubeconfig), with a VehicleNode made by the admin."""

    name: str
    kubeconfig: Path


def vehiclenode(name: str) -> dict[str, Any]:
    """The example car (examples/01-vehiclenode.yaml), renamed, with a policy that holds at any
    hour (no time windows, no energy budget), so whether it is eligible depends on its signals."""
    body: dict[str, Any] = yaml.safe_load((REPO / "examples" / "01-vehiclenode.yaml").read_text())
    body["metadata"] = {"name": name}
    body["spec"]["policy"] = {"minBatteryPercent": 50, "reserveBatteryPercent": 30, "timeZone": "UTC"}
    return body


def status_of(api: httpx.Client, name: str) -> dict[str, Any]:
    r = api.get(f"{VN}/{name}")
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json().get("status") or {}
    return found
