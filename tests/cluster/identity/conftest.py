"""Cluster fixtures for the identity tests: CRDs, config/rbac applied, two enrolled cars.

config/rbac is applied with the test bed's own kubectl (``apply --server-side -k``), the
way a user applies it, so the kustomization itself is tested. Two cars with fresh names
(a reused test bed may hold earlier sessions' cars) are enrolled through
``curbside_testbed.identity``, get a VehicleNode from examples/01-vehiclenode.yaml whose
operator-owned status is set (as the operator would), and car B gets a Lease. Before any
test runs, the RBAC objects and the admission policy are awaited until they are in force,
so a test sees the steady state and each expectation's own polling is only a safety net.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from curbside_api.v1alpha1 import vehiclenode
from curbside_testbed import bed, build, identity
from tests.cluster import wait
from tests.cluster.api import conftest as api_conftest

crds = api_conftest.crds
"""The API tests' session fixture that applies crds/*.yaml and waits until they are served."""

REPO = Path(__file__).resolve().parents[3]
VN = "/apis/curbside.dev/v1alpha1/vehiclenodes"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{identity.CARS_NAMESPACE}/leases"
MERGE = {"Content-Type": "application/merge-patch+json"}
POLICY = "curbside-car-writes"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """A Lease's renewTime/acquireTime (MicroTime)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def vehicle_node(name: str) -> dict[str, Any]:
    """examples/01-vehiclenode.yaml, renamed."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "examples" / "01-vehiclenode.yaml").read_text())
    doc["metadata"] = {"name": name}
    return doc


def operator_status() -> dict[str, Any]:
    """Operator-owned status as the operator would write it (so a car's change is visible)."""
    return {
        "operator": vehiclenode.OperatorStatus(
            eligible=False,
            reasons=[vehiclenode.IneligibleReason.OFFLINE],
            message="waiting for the car's first report",
        ).to_json(),
        "conditions": [
            {
                "type": "Ready",
                "status": "Unknown",
                "reason": "NeverReported",
                "message": "",
                "lastTransitionTime": now(),
            }
        ],
    }


def lease(name: str, *, holder: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": identity.CARS_NAMESPACE},
        "spec": {"holderIdentity": holder or name, "leaseDurationSeconds": 40, "renewTime": now_micro()},
    }


def ok(r: httpx.Response, *codes: int) -> httpx.Response:
    assert r.status_code in (
        codes or (200, 201)
    ), f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r


def watch(client: httpx.Client, path: str, **params: str) -> httpx.Response:
    """Open a watch and return as soon as the API server answers (authorization is decided
    before the first event); the body of a successful watch is left unread."""
    with client.stream("GET", path, params={**params, "watch": "1"}) as r:
        if not r.is_success:
            r.read()
        return r


def _text(r: httpx.Response) -> str:
    try:
        return r.text[:600]
    except httpx.ResponseNotRead:
        return f"HTTP {r.status_code} (a watch stream)"


def answer(
    request: Callable[[], httpx.Response], *, allowed: bool, status: int = 403, seconds: float = 30
) -> httpx.Response:
    """Repeat ``request`` until it succeeds (``allowed``) or is refused with ``status``, for at
    most ``seconds`` (RBAC and admission policies reach the API server's caches
    asynchronously). A request that must be refused but succeeds fails at once."""
    last: list[httpx.Response] = []

    def answered() -> httpx.Response | None:
        r = request()
        last[:] = [r]
        if allowed:
            return r if r.is_success else None
        assert not r.is_success, f"allowed ({r.status_code}), must be refused: {_text(r)}"
        return r if r.status_code == status else None

    try:
        return wait.until(answered, timeout=seconds, what="allowed" if allowed else f"HTTP {status}")
    except wait.WaitTimeout as exc:
        r = last[0]
        raise AssertionError(
            f"{exc}; last answer: {r.request.method} {r.request.url.path}: {r.text[:600]}"
        ) from None


@pytest.fixture(scope="session")
def rbac_applied(testbed: bed.TestBed, crds: list[dict[str, Any]]) -> None:
    """config/rbac applied with kubectl, and the admission policy compiled without warnings."""
    kubectl = build.toolchain().bin_dir / "kubectl"
    done = subprocess.run(
        [
            str(kubectl),
            "--kubeconfig",
            str(testbed.kubeconfig),
            "apply",
            "--server-side",
            "-k",
            "config/rbac",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with testbed.http() as admin:

        def checked() -> dict[str, Any] | None:
            r = ok(admin.get(f"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/{POLICY}"))
            status: dict[str, Any] = r.json().get("status", {})
            fresh = status.get("observedGeneration") == r.json()["metadata"]["generation"]
            return status if fresh else None

        status = wait.until(checked, timeout=30, what=f"{POLICY} type-checked")
        assert not status.get("typeChecking", {}).get("expressionWarnings"), status


@dataclass
class Cars:
    """Two enrolled cars: ``a`` (whose credentials the tests use) and ``b`` (the other car)."""

    a: str
    b: str
    a_client: httpx.Client
    admin: httpx.Client

    def ensure_lease(self, name: str) -> None:
        r = self.admin.post(LEASES, json=lease(name))
        ok(r, 201, 409)

    def drop_lease(self, name: str) -> None:
        ok(self.admin.delete(f"{LEASES}/{name}"), 200, 404)

    def get(self, path: str) -> dict[str, Any]:
        body: dict[str, Any] = ok(self.admin.get(path)).json()
        return body


@pytest.fixture(scope="module")
def cars(testbed: bed.TestBed, rbac_applied: None) -> Iterator[Cars]:
    suffix = os.urandom(3).hex()
    a, b = f"idt-{suffix}-a", f"idt-{suffix}-b"
    with testbed.http() as admin:
        kubeconfigs = {car: identity.enroll_car(testbed, car) for car in (a, b)}
        for car in (a, b):
            ok(admin.post(VN, json=vehicle_node(car)))
            ok(admin.patch(f"{VN}/{car}/status", json={"status": operator_status()}, headers=MERGE))
        ok(admin.post(LEASES, json=lease(b)))
        client = identity.http_client(kubeconfigs[a])
        try:
            world = Cars(a=a, b=b, a_client=client, admin=admin)
            # In force: A's own RBAC (it can read its VehicleNode) and the admission policy
            # (A may create a Lease, but not one named after B).
            wait.until(lambda: client.get(f"{VN}/{a}").status_code == 200, timeout=30, what="car RBAC")
            wait.until(
                lambda: POLICY in client.post(LEASES, json=lease(b)).text,
                timeout=30,
                what="the admission policy refusing a Lease named after another car",
            )
            yield world
        finally:
            client.close()
            for car in (a, b):
                admin.delete(f"{VN}/{car}")
                admin.delete(f"{LEASES}/{car}")
                identity.unenroll_car(testbed, car)
