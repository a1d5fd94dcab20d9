"""Car identities against the real API server: what a car may and may not do, asked and answered.

Why this exists: the identity tests (per-car credentials, the operator's RBAC) build the same
objects (examples/01-vehiclenode.yaml renamed, the operator-owned status, a car's Lease) and
ask the same way whether a request is allowed or refused; RBAC and admission policies reach
the API server's caches asynchronously, so ``answer`` repeats a request until it settles.
``Cars`` holds the two enrolled cars of the identity tests' ``cars`` fixture
(tests/cluster/identity/conftest.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from curbside_api.v1alpha1 import vehiclenode
from curbside_testbed import identity
from tests.support import wait

REPO = Path(__file__).resolve().parents[2]
VN = "/apis/curbside.dev/v1alpha1/vehiclenodes"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{identity.CARS_NAMESPACE}/leases"
MERGE = {"Content-Type": "application/merge-patch+json"}
POLICY = "curbside-car-writes"
"""The ValidatingAdmissionPolicy of config/rbac that limits what a car may write."""


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
