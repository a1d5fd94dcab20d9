"""Car credentials beyond the request matrix of test_car_credentials.py: what a report stores,
bad and unenrolled certificates, and the admission policy holding when RBAC is too broad.

Split from test_car_credentials.py (which keeps the matrix) to keep each module short; the
same fixtures (conftest.py) and conventions apply.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from curbside_api.v1alpha1 import vehiclenode
from curbside_testbed import bed, identity, pki
from tests.cluster.identity.test_car_credentials import AGENT_STATUS
from tests.support import wait
from tests.support.car_identity import LEASES, MERGE, VN, Cars, answer, lease, ok


def test_agent_report_lands_and_leaves_operator_fields_alone(cars: Cars) -> None:
    """What the agent writes is stored; what the operator wrote is untouched by it."""
    before = cars.get(f"{VN}/{cars.a}")["status"]
    ok(cars.a_client.patch(f"{VN}/{cars.a}/status", json={"status": AGENT_STATUS}, headers=MERGE))
    after = cars.get(f"{VN}/{cars.a}")["status"]
    assert {k: after.get(k) for k in AGENT_STATUS} == AGENT_STATUS
    for field in vehiclenode.OPERATOR_OWNED:
        assert after[field] == before[field], field


def test_status_write_cannot_smuggle_metadata(cars: Cars) -> None:
    """Metadata sent to the status subresource is dropped, not stored (and not refused)."""
    labels = cars.get(f"{VN}/{cars.a}")["metadata"].get("labels")
    body = {"metadata": {"labels": {"curbside.dev/eligible": "true"}}, "status": {"batteryPercent": 64}}
    ok(cars.a_client.patch(f"{VN}/{cars.a}/status", json=body, headers=MERGE))
    stored = cars.get(f"{VN}/{cars.a}")
    assert stored["status"]["batteryPercent"] == 64
    assert stored["metadata"].get("labels") == labels


def _refused(request: Callable[[], httpx.Response], status: int, says: str) -> None:
    r = answer(request, allowed=False, status=status)
    assert says in r.text, r.text


@pytest.mark.parametrize("problem", ["expired", "foreign-ca"])
def test_bad_certificate_is_unauthenticated(
    problem: str, cars: Cars, testbed: bed.TestBed, tmp_path: Path
) -> None:
    """A car certificate that expired, or that another CA signed, is HTTP 401, not a car."""
    if problem == "expired":
        kubeconfig = identity.issue_credentials(
            testbed,
            cars.a,
            folder=f"{cars.a}-expired",
            not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=2),
            validity=dt.timedelta(days=1),
        )
    else:
        pki.create(tmp_path, bed_name="rogue")
        kubeconfig = identity.issue_credentials(
            testbed, cars.a, folder=f"{cars.a}-rogue", ca=pki.load_ca(tmp_path)
        )
    with identity.http_client(kubeconfig) as client:
        _refused(lambda: client.get(f"{VN}/{cars.a}"), 401, "Unauthorized")


def test_unenrolled_car_has_nothing(cars: Cars, testbed: bed.TestBed) -> None:
    """A valid car certificate without its per-car RBAC (never enrolled, or unenrolled) may
    not even create the Lease the whole group may create: the policy asks the authorizer."""
    ghost = f"{cars.a}-ghost"
    kubeconfig = identity.issue_credentials(testbed, ghost)
    with identity.http_client(kubeconfig) as client:
        _refused(lambda: client.post(LEASES, json=lease(ghost)), 403, f"car {ghost} is not enrolled")
        _refused(lambda: client.get(f"{VN}/{ghost}"), 403, "cannot get")


@pytest.fixture
def overprivileged(cars: Cars, testbed: bed.TestBed) -> Any:
    """Car C, enrolled, with its VehicleNode, and bound to cluster-admin by mistake."""
    c = f"{cars.a}-c"
    kubeconfig = identity.enroll_car(testbed, c)
    binding = {
        "metadata": {"name": f"idt-mistake-{c}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": identity.username(c)}],
    }
    crbs = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
    body = yaml.safe_load(yaml.safe_dump(cars.get(f"{VN}/{cars.a}")))
    body["metadata"] = {"name": c}
    body.pop("status")
    ok(cars.admin.post(VN, json=body))
    ok(cars.admin.post(crbs, json=binding))
    client = identity.http_client(kubeconfig)
    try:
        wait.until(lambda: client.get("/api/v1/secrets").is_success, timeout=30, what="the mistaken binding")
        yield c, client
    finally:
        client.close()
        cars.admin.delete(f"{crbs}/idt-mistake-{c}")
        cars.admin.delete(f"{VN}/{c}")
        cars.admin.delete(f"{LEASES}/{c}")
        identity.unenroll_car(testbed, c)


def test_admission_holds_when_rbac_is_too_broad(cars: Cars, overprivileged: tuple[str, httpx.Client]) -> None:
    """Defence in depth: a car bound to cluster-admin still cannot write another car's
    objects, its own spec or operator-owned status, or create and delete VehicleNodes."""
    c, client = overprivileged
    other_status = {"status": {"state": "Driving"}}
    operator_status = {"status": {"operator": {"eligible": True}}}
    elsewhere = {**lease(c), "metadata": {"name": c, "namespace": "default"}}
    cars.ensure_lease(c)
    checks: list[tuple[Callable[[], httpx.Response], str]] = [
        (lambda: client.patch(f"{VN}/{cars.b}/status", json=other_status, headers=MERGE), f"named {c}"),
        (lambda: client.delete(f"{LEASES}/{cars.b}"), f"named {c}"),
        (lambda: client.delete(f"{VN}/{cars.b}"), f"named {c}"),
        (
            lambda: client.patch(f"{VN}/{c}", json={"spec": {"hardware": {"tops": 1}}}, headers=MERGE),
            "status subresource",
        ),
        (
            lambda: client.patch(f"{VN}/{c}", json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE),
            "status subresource",
        ),
        (
            lambda: client.post(VN, json={**cars.get(f"{VN}/{c}"), "metadata": {"name": c}}),
            "may not create",
        ),
        (lambda: client.delete(f"{VN}/{c}"), "may not delete VehicleNodes"),
        (lambda: client.patch(f"{VN}/{c}/status", json=operator_status, headers=MERGE), "status.operator"),
        (lambda: client.delete(f"{LEASES}/{c}"), "may not delete Leases"),
        (
            lambda: client.post("/apis/coordination.k8s.io/v1/namespaces/default/leases", json=elsewhere),
            "namespace curbside-cars",
        ),
    ]
    for request, says in checks:
        _refused(request, 403, says)
