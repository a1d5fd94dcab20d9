"""The per-car credential matrix against the real API server (docs/adr/0002-car-identity.md).
Car A's own x509 credentials, from the kubeconfig enrollment wrote, against every request a
car's agent makes and a long list it must never make: another car's VehicleNode and Lease,
its own spec, metadata and operator-owned status, creating or deleting VehicleNodes, listing
or watching them (even by another car's name), another car's Node and the pods on it,
Secrets, Pods, InferenceJobs, RBAC, impersonation (more in test_car_beyond_matrix.py).

Like upstream's node_test.go, each expectation is polled for up to 30 s (RBAC and admission
policies reach the API server's caches asynchronously); unlike it, a request expected to be
refused that succeeds even once fails at once, because the fixture already waited for the
policy to be in force.

Refusals by RBAC say "cannot <verb> resource"; refusals by the admission policy name its
rule or the field. Both are HTTP 403 (reason Forbidden).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from curbside_api.v1alpha1 import vehiclenode
from curbside_testbed import identity
from tests.support.car_identity import LEASES, MERGE, VN, Cars, answer, lease, now, now_micro, ok, watch

RBAC = "cannot"  # RBAC's refusals: 'User "curbside:car:x" cannot patch resource "vehiclenodes" ...'

AGENT_STATUS: dict[str, Any] = {
    "state": "Parked",
    "batteryPercent": 81,
    "charging": True,
    "chargerPowerKw": 7.4,
    "network": "Unmetered",
    "thermal": {"cabinCelsius": 21, "socCelsius": 44, "packCelsius": 25},
    "region": "eu-west",
    "energyUsedTodayKwh": 1.25,
    "predictedDeparture": {"time": "2030-01-01T07:40:00Z", "confidence": 0.8},
    "observedAt": "2030-01-01T00:00:00Z",
}
"""A valid value for every agent-owned status field."""

OPERATOR_CHANGES: dict[str, Any] = {
    "operator": {"eligible": True, "reasons": []},
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "AgentReporting",
            "message": "",
            "lastTransitionTime": now(),
        }
    ],
}
"""A valid change to every operator-owned status field."""


def test_tables_cover_the_ownership_split() -> None:
    """Adding a status field without a row here would leave it untested."""
    assert set(AGENT_STATUS) == set(vehiclenode.AGENT_OWNED)
    assert set(OPERATOR_CHANGES) == set(vehiclenode.OPERATOR_OWNED)


# -- the matrix ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[Cars], httpx.Response]
    refused_with: str | None = None
    """None: the request must succeed (2xx). Otherwise: HTTP 403 whose message contains this."""


def _status_put(c: Cars, change: Callable[[dict[str, Any]], None]) -> httpx.Response:
    """Read A's VehicleNode as A, change the body, PUT it to the status subresource."""
    body = ok(c.a_client.get(f"{VN}/{c.a}/status")).json()
    change(body["status"])
    return c.a_client.put(f"{VN}/{c.a}/status", json=body)


def _create_own_lease(c: Cars) -> httpx.Response:
    c.drop_lease(c.a)
    return c.a_client.post(LEASES, json=lease(c.a))


def _renew_own_lease(c: Cars) -> httpx.Response:
    c.ensure_lease(c.a)
    return c.a_client.patch(f"{LEASES}/{c.a}", json={"spec": {"renewTime": now_micro()}}, headers=MERGE)


def _update_own_lease(c: Cars) -> httpx.Response:
    c.ensure_lease(c.a)
    body = ok(c.a_client.get(f"{LEASES}/{c.a}")).json()
    body["spec"]["renewTime"] = now_micro()
    return c.a_client.put(f"{LEASES}/{c.a}", json=body)


def _own_lease_patch(patch: Callable[[Cars], dict[str, Any]]) -> Callable[[Cars], httpx.Response]:
    def call(c: Cars) -> httpx.Response:
        c.ensure_lease(c.a)
        return c.a_client.patch(f"{LEASES}/{c.a}", json=patch(c), headers=MERGE)

    return call


def _status_patch(status: dict[str, Any]) -> Callable[[Cars], httpx.Response]:
    return lambda c: c.a_client.patch(f"{VN}/{c.a}/status", json={"status": status}, headers=MERGE)


def _main_patch(patch: dict[str, Any]) -> Callable[[Cars], httpx.Response]:
    return lambda c: c.a_client.patch(f"{VN}/{c.a}", json=patch, headers=MERGE)


def _impersonating(user: Callable[[Cars], str], *groups: str) -> Callable[[Cars], httpx.Response]:
    def call(c: Cars) -> httpx.Response:
        headers = [("Impersonate-User", user(c))] + [("Impersonate-Group", g) for g in groups]
        return c.a_client.get(f"{VN}/{c.b}", headers=headers)

    return call


PATH_SECRETS = f"/api/v1/namespaces/{identity.CARS_NAMESPACE}/secrets"
NODES = "/api/v1/nodes"
IJ = "/apis/curbside.dev/v1alpha1/namespaces/default/inferencejobs"
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "sneaky"},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}
CRB = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "sneaky"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "curbside:car:x"}],
}

ALLOWED = [
    Case("get-own-vehiclenode", lambda c: c.a_client.get(f"{VN}/{c.a}")),
    Case("get-own-status", lambda c: c.a_client.get(f"{VN}/{c.a}/status")),
    Case(
        "list-own-vehiclenode-by-name",
        lambda c: c.a_client.get(VN, params={"fieldSelector": f"metadata.name={c.a}"}),
    ),
    Case(
        "watch-own-vehiclenode",
        lambda c: watch(c.a_client, VN, fieldSelector=f"metadata.name={c.a}"),
    ),
    Case("patch-own-status-agent-fields", _status_patch(AGENT_STATUS)),
    Case("update-own-status-agent-fields", lambda c: _status_put(c, lambda s: s.update(batteryPercent=77))),
    Case("create-own-lease", _create_own_lease),
    Case("get-own-lease", lambda c: (c.ensure_lease(c.a), c.a_client.get(f"{LEASES}/{c.a}"))[1]),
    Case("renew-own-lease-patch", _renew_own_lease),
    Case("renew-own-lease-update", _update_own_lease),
]

FORBIDDEN = [
    # Another car's objects: reads too (per-car RBAC), not only writes.
    Case("get-other-vehiclenode", lambda c: c.a_client.get(f"{VN}/{c.b}"), RBAC + " get"),
    Case("get-other-status", lambda c: c.a_client.get(f"{VN}/{c.b}/status"), RBAC + " get"),
    Case(
        "patch-other-status",
        lambda c: c.a_client.patch(
            f"{VN}/{c.b}/status", json={"status": {"state": "Driving"}}, headers=MERGE
        ),
        RBAC + " patch",
    ),
    Case(
        "watch-other-vehiclenode",
        lambda c: watch(c.a_client, VN, fieldSelector=f"metadata.name={c.b}"),
        RBAC + " watch",
    ),
    Case(
        "list-other-vehiclenode-by-name",
        lambda c: c.a_client.get(VN, params={"fieldSelector": f"metadata.name={c.b}"}),
        RBAC + " list",
    ),
    Case(
        "list-vehiclenodes-by-label",
        lambda c: c.a_client.get(VN, params={"labelSelector": "curbside.dev/vehicle"}),
        RBAC + " list",
    ),
    Case(
        "watch-other-vehiclenode-by-resource-version",
        lambda c: watch(c.a_client, VN, fieldSelector=f"metadata.name={c.b}", resourceVersion="0"),
        RBAC + " watch",
    ),
    Case("get-other-lease", lambda c: c.a_client.get(f"{LEASES}/{c.b}"), RBAC + " get"),
    Case(
        "renew-other-lease",
        lambda c: c.a_client.patch(
            f"{LEASES}/{c.b}", json={"spec": {"renewTime": now_micro()}}, headers=MERGE
        ),
        RBAC + " patch",
    ),
    Case(
        "update-other-lease",
        lambda c: c.a_client.put(f"{LEASES}/{c.b}", json=c.get(f"{LEASES}/{c.b}")),
        RBAC + " update",
    ),
    Case("delete-other-lease", lambda c: c.a_client.delete(f"{LEASES}/{c.b}"), RBAC + " delete"),
    Case(
        "create-other-lease",
        lambda c: c.a_client.post(LEASES, json=lease(c.b)),
        "may write only the VehicleNode and Lease named {a}",
    ),
    # Its own Lease, outside what a heartbeat needs.
    Case("list-leases", lambda c: c.a_client.get(LEASES), RBAC + " list"),
    Case("delete-own-lease", lambda c: c.a_client.delete(f"{LEASES}/{c.a}"), RBAC + " delete"),
    Case(
        "create-own-lease-elsewhere",
        lambda c: c.a_client.post(
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            json={**lease(c.a), "metadata": {"name": c.a, "namespace": "default"}},
        ),
        RBAC + " create",
    ),
    Case(
        "create-own-lease-held-by-other",
        lambda c: c.a_client.post(LEASES, json=lease(c.a, holder=c.b)),
        "spec.holderIdentity",
    ),
    Case(
        "create-own-lease-with-finalizer",
        lambda c: c.a_client.post(
            LEASES, json={**lease(c.a), "metadata": {"name": c.a, "finalizers": ["curbside.dev/keep"]}}
        ),
        "metadata.finalizers",
    ),
    Case(
        "hand-own-lease-to-other",
        _own_lease_patch(lambda c: {"spec": {"holderIdentity": c.b}}),
        "spec.holderIdentity",
    ),
    Case(
        "label-own-lease", _own_lease_patch(lambda c: {"metadata": {"labels": {"x": "y"}}}), "metadata.labels"
    ),
    Case(
        "finalize-own-lease",
        _own_lease_patch(lambda c: {"metadata": {"finalizers": ["curbside.dev/keep"]}}),
        "metadata.finalizers",
    ),
    # Its own VehicleNode: the main resource (spec, metadata) is not the car's.
    Case("patch-own-spec", _main_patch({"spec": {"hardware": {"tops": 9999}}}), RBAC + " patch"),
    Case(
        "patch-own-labels",
        _main_patch({"metadata": {"labels": {"curbside.dev/eligible": "true"}}}),
        RBAC + " patch",
    ),
    Case("patch-own-annotations", _main_patch({"metadata": {"annotations": {"x": "y"}}}), RBAC + " patch"),
    Case(
        "patch-own-finalizers",
        _main_patch({"metadata": {"finalizers": ["curbside.dev/keep"]}}),
        RBAC + " patch",
    ),
    Case(
        "update-own-vehiclenode",
        lambda c: c.a_client.put(f"{VN}/{c.a}", json=c.get(f"{VN}/{c.a}")),
        RBAC + " update",
    ),
    # Operator-owned status (test 11), by patch, by removal and by a full update.
    *(
        Case(f"patch-own-status-{f}", _status_patch({f: v}), f"status.{f}")
        for f, v in OPERATOR_CHANGES.items()
    ),
    *(Case(f"remove-own-status-{f}", _status_patch({f: None}), f"status.{f}") for f in OPERATOR_CHANGES),
    Case(
        "update-own-status-operator",
        lambda c: _status_put(c, lambda s: s["operator"].update(eligible=True)),
        "status.operator",
    ),
    Case(
        "agent-fields-smuggling-operator",
        _status_patch({**AGENT_STATUS, "operator": {"eligible": True}}),
        "status.operator",
    ),
    # VehicleNodes as a collection.
    Case(
        "create-vehiclenode",
        lambda c: c.a_client.post(VN, json=c.get(f"{VN}/{c.b}") | {"metadata": {"name": "idt-new"}}),
        RBAC + " create",
    ),
    Case("delete-own-vehiclenode", lambda c: c.a_client.delete(f"{VN}/{c.a}"), RBAC + " delete"),
    Case("delete-other-vehiclenode", lambda c: c.a_client.delete(f"{VN}/{c.b}"), RBAC + " delete"),
    Case("delete-all-vehiclenodes", lambda c: c.a_client.delete(VN), RBAC + " deletecollection"),
    Case("list-vehiclenodes", lambda c: c.a_client.get(VN), RBAC + " list"),
    Case("watch-vehiclenodes", lambda c: watch(c.a_client, VN), RBAC + " watch"),
    # Another car's Node and the pods on it (the car's identity needs no Node or Pod at all).
    Case("get-other-node", lambda c: c.a_client.get(f"{NODES}/{c.b}"), RBAC + " get"),
    Case("get-own-node", lambda c: c.a_client.get(f"{NODES}/{c.a}"), RBAC + " get"),
    Case(
        "patch-other-node",
        lambda c: c.a_client.patch(f"{NODES}/{c.b}", json={"spec": {"unschedulable": True}}, headers=MERGE),
        RBAC + " patch",
    ),
    Case(
        "patch-other-node-status",
        lambda c: c.a_client.patch(
            f"{NODES}/{c.b}/status", json={"status": {"conditions": []}}, headers=MERGE
        ),
        RBAC + " patch",
    ),
    Case("delete-other-node", lambda c: c.a_client.delete(f"{NODES}/{c.b}"), RBAC + " delete"),
    Case(
        "list-pods-on-other-node",
        lambda c: c.a_client.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={c.b}"}),
        RBAC + " list",
    ),
    Case(
        "watch-pods-on-other-node",
        lambda c: watch(c.a_client, "/api/v1/pods", fieldSelector=f"spec.nodeName={c.b}"),
        RBAC + " watch",
    ),
    Case(
        "get-pod-on-other-node",
        lambda c: c.a_client.get(f"/api/v1/namespaces/default/pods/{c.b}-worker"),
        RBAC + " get",
    ),
    Case(
        "evict-pod-on-other-node",
        lambda c: c.a_client.post(
            f"/api/v1/namespaces/default/pods/{c.b}-worker/eviction",
            json={"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": f"{c.b}-worker"}},
        ),
        RBAC + " create",
    ),
    Case(
        "delete-pods-on-other-node",
        lambda c: c.a_client.delete(
            "/api/v1/namespaces/default/pods", params={"fieldSelector": f"spec.nodeName={c.b}"}
        ),
        RBAC + " deletecollection",
    ),
    # Everything else.
    Case("list-secrets-everywhere", lambda c: c.a_client.get("/api/v1/secrets"), RBAC + " list"),
    Case("list-secrets-car-namespace", lambda c: c.a_client.get(PATH_SECRETS), RBAC + " list"),
    Case("get-secret", lambda c: c.a_client.get(f"{PATH_SECRETS}/car-token"), RBAC + " get"),
    Case("list-configmaps", lambda c: c.a_client.get("/api/v1/configmaps"), RBAC + " list"),
    Case("list-pods-everywhere", lambda c: c.a_client.get("/api/v1/pods"), RBAC + " list"),
    Case(
        "list-pods-kube-system",
        lambda c: c.a_client.get("/api/v1/namespaces/kube-system/pods"),
        RBAC + " list",
    ),
    Case(
        "create-pod", lambda c: c.a_client.post("/api/v1/namespaces/default/pods", json=POD), RBAC + " create"
    ),
    Case("list-nodes", lambda c: c.a_client.get("/api/v1/nodes"), RBAC + " list"),
    Case(
        "list-inferencejobs-everywhere",
        lambda c: c.a_client.get("/apis/curbside.dev/v1alpha1/inferencejobs"),
        RBAC + " list",
    ),
    Case("list-inferencejobs", lambda c: c.a_client.get(IJ), RBAC + " list"),
    Case("get-inferencejob", lambda c: c.a_client.get(f"{IJ}/any"), RBAC + " get"),
    Case(
        "create-inferencejob",
        lambda c: c.a_client.post(IJ, json={"metadata": {"name": "x"}}),
        RBAC + " create",
    ),
    Case(
        "create-clusterrolebinding",
        lambda c: c.a_client.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=CRB),
        RBAC + " create",
    ),
    Case("impersonate-other-car", _impersonating(lambda c: identity.username(c.b)), RBAC + " impersonate"),
    Case("impersonate-admin", _impersonating(lambda c: "admin", "system:masters"), RBAC + " impersonate"),
    Case(
        "impersonate-operator",
        _impersonating(lambda c: "system:serviceaccount:curbside-system:curbside-operator"),
        RBAC + " impersonate",
    ),
]


def _expand(text: str, c: Cars) -> str:
    return text.replace("{a}", c.a).replace("{b}", c.b)


def _expect(case: Case, cars: Cars) -> None:
    r = answer(lambda: case.call(cars), allowed=case.refused_with is None)
    if case.refused_with is not None:
        body = r.json()
        assert body["reason"] == "Forbidden", body
        assert _expand(case.refused_with, cars) in body["message"], body["message"]


@pytest.mark.parametrize("case", ALLOWED, ids=[c.id for c in ALLOWED])
def test_car_may(case: Case, cars: Cars) -> None:
    _expect(case, cars)


@pytest.mark.parametrize("case", FORBIDDEN, ids=[c.id for c in FORBIDDEN])
def test_car_may_not(case: Case, cars: Cars) -> None:
    _expect(case, cars)
