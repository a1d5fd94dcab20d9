"""The operator's least privilege (config/rbac/operator.yaml, enrollment.yaml), checked with
its own identity against the real API server.

The admin client impersonates ServiceAccount curbside-system/curbside-operator (the API
server adds the ServiceAccount's groups), and makes the requests the operator makes: kopf's
CRD and namespace scans, watching and patching VehicleNodes and InferenceJobs and their
status, creating and deleting pods, patching Nodes, reading car Leases, posting Events,
reviewing workers' tokens (TokenReview), and enrolling a car. Writes are server-side dry runs
where a dry run is authorized like the real request. What the operator must not do (Secrets,
deleting VehicleNodes or Nodes, writing Leases outside enrollment's grant, granting what it
does not hold, minting ServiceAccount tokens) is refused with 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from curbside_testbed import bed, identity
from tests.support import wait
from tests.support.car_identity import (
    LEASES,
    MERGE,
    VN,
    Cars,
    answer,
    lease,
    now_micro,
    ok,
    operator_status,
    watch,
)

OPERATOR = "system:serviceaccount:curbside-system:curbside-operator"
REPO = Path(__file__).resolve().parents[3]
DRY = {"dryRun": "All"}
CAR_NODE = "car-00000"  # the test bed's first car Node


@dataclass
class World:
    op: httpx.Client
    cars: Cars
    namespace: str
    job: str
    pod: str


@pytest.fixture
def world(testbed: bed.TestBed, cars: Cars, namespace: str) -> Iterator[World]:
    """An InferenceJob and a pod in a fresh namespace, and a client that is the operator."""
    admin = cars.admin
    job: dict[str, Any] = yaml.safe_load((REPO / "examples" / "02-minimal-inferencejob.yaml").read_text())
    ok(admin.post(f"/apis/curbside.dev/v1alpha1/namespaces/{namespace}/inferencejobs", json=job))
    pod = {"metadata": {"name": "worker"}, "spec": {"containers": [{"name": "w", "image": "triton"}]}}
    ok(admin.post(f"/api/v1/namespaces/{namespace}/pods", json=pod))
    with testbed.http() as op:
        op.headers["Impersonate-User"] = OPERATOR
        yield World(op=op, cars=cars, namespace=namespace, job=job["metadata"]["name"], pod="worker")


def _ij(w: World, sub: str = "") -> str:
    return f"/apis/curbside.dev/v1alpha1/namespaces/{w.namespace}/inferencejobs/{w.job}{sub}"


def _event(namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"generateName": "curbside-", "namespace": namespace},
        # kopf sets the involved object's namespace to the event's, for cluster-scoped ones too.
        "involvedObject": {
            "kind": "VehicleNode",
            "name": "car-00000",
            "namespace": namespace,
            "apiVersion": "curbside.dev/v1alpha1",
        },
        "reason": "Test",
        "message": "the operator may post events",
        "type": "Normal",
    }


Call = Callable[[World], httpx.Response]
Where = str | Callable[[World], str]
ANNOTATE = {"metadata": {"annotations": {"kopf.zalando.org/last-handled-configuration": "{}"}}}
IJS = "/apis/curbside.dev/v1alpha1/inferencejobs"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
DRIVING = {
    "metadata": {"labels": {"curbside.dev/eligible": "false"}},
    "spec": {"taints": [{"key": "curbside.dev/driving", "value": "true", "effect": "NoExecute"}]},
}


def _at(path: Where, w: World) -> str:
    return path if isinstance(path, str) else path(w)


def _get(path: Where) -> Call:
    return lambda w: w.op.get(_at(path, w))


def _watch(path: Where) -> Call:
    return lambda w: watch(w.op, _at(path, w))


def _patch(path: Where, body: Callable[[World], dict[str, Any]]) -> Call:
    """A server-side dry-run merge patch: authorized and admitted like the real one."""
    return lambda w: w.op.patch(_at(path, w), params=DRY, json=body(w), headers=MERGE)


def _post(path: Where, body: Callable[[World], dict[str, Any]]) -> Call:
    return lambda w: w.op.post(_at(path, w), params=DRY, json=body(w))


def _pod(w: World) -> str:
    return f"/api/v1/namespaces/{w.namespace}/pods/{w.pod}"


def _new_pod(w: World) -> dict[str, Any]:
    return {
        "metadata": {"name": "p"},
        "spec": {"nodeName": CAR_NODE, "containers": [{"name": "c", "image": "x"}]},
    }


MAY: list[tuple[str, Call]] = [
    ("list-crds", _get(CRDS)),
    ("watch-crds", _watch(CRDS)),
    ("list-namespaces", _get("/api/v1/namespaces")),
    ("watch-namespaces", _watch("/api/v1/namespaces")),
    ("list-vehiclenodes", _get(VN)),
    ("watch-vehiclenodes", _watch(VN)),
    ("create-vehiclenode", _post(VN, lambda w: w.cars.get(f"{VN}/{w.cars.a}") | {"metadata": {"name": "n"}})),
    ("patch-vehiclenode-kopf-annotation", _patch(lambda w: f"{VN}/{w.cars.a}", lambda w: ANNOTATE)),
    (
        "patch-vehiclenode-operator-status",
        _patch(lambda w: f"{VN}/{w.cars.a}/status", lambda w: {"status": operator_status()}),
    ),
    ("list-inferencejobs", _get(IJS)),
    ("watch-inferencejobs", _watch(IJS)),
    ("patch-inferencejob-kopf-annotation", _patch(_ij, lambda w: ANNOTATE)),
    ("patch-inferencejob-status", _patch(lambda w: _ij(w, "/status"), lambda w: {"status": {}})),
    ("list-pods", _get("/api/v1/pods")),
    ("watch-pods", _watch("/api/v1/pods")),
    ("create-pod", _post(lambda w: f"/api/v1/namespaces/{w.namespace}/pods", _new_pod)),
    ("patch-pod-labels", _patch(_pod, lambda w: {"metadata": {"labels": {"curbside.dev/epoch": "2"}}})),
    ("delete-pod", lambda w: w.op.delete(_pod(w), params=DRY)),
    ("list-nodes", _get("/api/v1/nodes")),
    ("watch-nodes", _watch("/api/v1/nodes")),
    ("label-and-taint-node", _patch(f"/api/v1/nodes/{CAR_NODE}", lambda w: DRIVING)),
    ("list-car-leases", _get(LEASES)),
    ("watch-car-leases", _watch(LEASES)),
    ("get-car-lease", _get(lambda w: f"{LEASES}/{w.cars.b}")),
    (
        "post-event-for-vehiclenode",
        _post("/api/v1/namespaces/curbside-system/events", lambda w: _event("curbside-system")),
    ),
    (
        "post-event-for-job",
        _post(lambda w: f"/api/v1/namespaces/{w.namespace}/events", lambda w: _event(w.namespace)),
    ),
    (  # the dispatcher checks workers' tokens; a review stores nothing, so no dry run is needed
        "review-worker-token",
        lambda w: w.op.post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            json={"spec": {"token": "not-a-token", "audiences": ["curbside-dispatcher"]}},
        ),
    ),
]

RBAC_API = "/apis/rbac.authorization.k8s.io/v1"
GRANT_SECRETS = {
    "metadata": {"name": "idt-escalate"},
    "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
}
BIND_CLUSTER_ADMIN = {
    "metadata": {"name": "idt-escalate"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
    "subjects": [{"kind": "ServiceAccount", "name": "curbside-operator", "namespace": "curbside-system"}],
}


def _delete(path: Where) -> Call:
    return lambda w: w.op.delete(_at(path, w), params=DRY)


MAY_NOT: list[tuple[str, Call]] = [
    ("list-secrets", _get("/api/v1/secrets")),
    ("list-own-secrets", _get("/api/v1/namespaces/curbside-system/secrets")),
    ("get-secret", _get(lambda w: f"/api/v1/namespaces/{w.namespace}/secrets/any")),
    ("list-configmaps", _get("/api/v1/configmaps")),
    ("delete-vehiclenode", _delete(lambda w: f"{VN}/{w.cars.a}")),
    ("create-inferencejob", _post(lambda w: _ij(w).rsplit("/", 1)[0], lambda w: {"metadata": {"name": "x"}})),
    ("delete-inferencejob", _delete(_ij)),
    ("delete-node", _delete(f"/api/v1/nodes/{CAR_NODE}")),
    (
        "bind-pod",
        _post(
            lambda w: _pod(w) + "/binding",
            lambda w: {"metadata": {"name": w.pod}, "target": {"kind": "Node", "name": CAR_NODE}},
        ),
    ),
    ("exec-pod", lambda w: w.op.post(_pod(w) + "/exec")),
    ("list-node-leases", _get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")),
    ("list-all-leases", _get("/apis/coordination.k8s.io/v1/leases")),
    ("create-car-lease", _post(LEASES, lambda w: lease("idt-op-lease"))),
    ("delete-car-lease", _delete(lambda w: f"{LEASES}/{w.cars.b}")),
    ("grant-secrets", _post(f"{RBAC_API}/clusterroles", lambda w: GRANT_SECRETS)),
    ("bind-cluster-admin", _post(f"{RBAC_API}/clusterrolebindings", lambda w: BIND_CLUSTER_ADMIN)),
    (  # it checks workers' tokens, it never makes any
        "request-serviceaccount-token",
        _post(
            lambda w: f"/api/v1/namespaces/{w.namespace}/serviceaccounts/default/token",
            lambda w: {"spec": {"audiences": ["curbside-dispatcher"]}},
        ),
    ),
]


@pytest.mark.parametrize(("case", "call"), MAY, ids=[c for c, _ in MAY])
def test_operator_may(case: str, call: Call, world: World) -> None:
    answer(lambda: call(world), allowed=True)


@pytest.mark.parametrize(("case", "call"), MAY_NOT, ids=[c for c, _ in MAY_NOT])
def test_operator_may_not(case: str, call: Call, world: World) -> None:
    r = answer(lambda: call(world), allowed=False)
    assert OPERATOR in r.json()["message"], r.text


def test_operator_may_not_impersonate(world: World) -> None:
    """Checked by asking (impersonation headers cannot be nested)."""
    review = {"spec": {"resourceAttributes": {"verb": "impersonate", "resource": "users"}}}
    r = ok(world.op.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review))
    assert r.json()["status"]["allowed"] is False, r.text


def test_operator_enrolls_and_unenrolls_a_car(world: World, testbed: bed.TestBed) -> None:
    """The operator can create a car's own RBAC objects (RBAC lets it grant what it holds),
    the car can then create and renew its Lease, and after the operator deletes them, it
    cannot."""
    car = f"{world.cars.a}-op"
    docs = identity.render_car_rbac(car)
    kubeconfig = identity.issue_credentials(testbed, car)
    try:
        identity.apply(world.op, docs)
        with identity.http_client(kubeconfig) as client:
            wait.until(
                lambda: client.post(LEASES, json=lease(car)).status_code == 201, timeout=30, what="enrolled"
            )
            renew = {"spec": {"renewTime": now_micro()}}
            ok(client.patch(f"{LEASES}/{car}", json=renew, headers=MERGE))
            identity.remove(world.op, docs)
            wait.until(
                lambda: client.patch(f"{LEASES}/{car}", json=renew, headers=MERGE).status_code == 403,
                timeout=30,
                what="the unenrolled car refused",
            )
    finally:
        identity.unenroll_car(testbed, car)
        world.cars.drop_lease(car)
