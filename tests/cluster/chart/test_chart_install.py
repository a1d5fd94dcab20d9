"""The chart against a real API server: install, upgrade (a no-op), uninstall, Pod Security.

``helm install`` into the session's test bed must be accepted object by object (RBAC, the
admission policies with their CEL compiled, the DaemonSet, ...); pods do not run (there is no
kubelet for the control-plane side and no image registry), which is not what is tested.
``helm upgrade`` with the same chart and values changes no object (resourceVersions equal);
``helm uninstall`` leaves only the CRDs (the chart's CRD policy). Every pod template the chart
renders, and the inference pod exactly as the operator builds it, passes a server-side dry
run into a namespace that enforces Pod Security ``restricted``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from curbside_api.v1alpha1 import inferencejob as ij
from curbside_operator.reconcile import pods
from curbside_testbed import bed, build
from tests.support import helm as h
from tests.support import wait

pytestmark = pytest.mark.cluster

RESTRICTED = "pod-security.kubernetes.io/enforce"


class Release:
    """One release of the chart in the test bed: helm and kubectl bound to its kubeconfig."""

    def __init__(self, testbed: bed.TestBed, home: Path) -> None:
        suffix = os.urandom(3).hex()
        self.name = f"cs-{suffix}"
        self.namespace = f"cs-{suffix}"
        self.lease_namespace = f"cs-{suffix}-cars"
        self.kubeconfig = str(testbed.kubeconfig)
        self.env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        self.values = ["--set", f"cars.leaseNamespace={self.lease_namespace}"]

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(h.helm_binary()), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=self.env,
            check=False,
        )
        if check:
            assert out.returncode == 0, f"helm {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
        return out

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        kubectl = build.toolchain().binary("kubectl")
        return subprocess.run(
            [str(kubectl), "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def manifest(self) -> list[dict[str, Any]]:
        text = self.helm("get", "manifest", self.name, "-n", self.namespace).stdout
        return [d for d in yaml.safe_load_all(text) if d]


def path_of(doc: dict[str, Any], namespace: str) -> str:
    """The REST path of a rendered object (only the kinds this chart renders)."""
    api, kind, name = doc["apiVersion"], doc["kind"], doc["metadata"]["name"]
    plural = {
        "ValidatingAdmissionPolicy": "validatingadmissionpolicies",
        "ValidatingAdmissionPolicyBinding": "validatingadmissionpolicybindings",
        "PersistentVolumeClaim": "persistentvolumeclaims",
    }.get(kind, kind.lower() + "s")
    base = f"/api/{api}" if "/" not in api else f"/apis/{api}"
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"} | {
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    if kind in cluster_scoped:
        return f"{base}/{plural}/{name}"
    return f"{base}/namespaces/{doc['metadata'].get('namespace', namespace)}/{plural}/{name}"


@pytest.fixture(scope="module")
def release(
    testbed: bed.TestBed, crds: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    rel = Release(testbed, tmp_path_factory.mktemp("helm"))
    try:
        yield rel
    finally:
        rel.helm("uninstall", rel.name, "-n", rel.namespace, "--wait", "--timeout", "120s", check=False)
        with testbed.http() as api:
            api.delete(f"/api/v1/namespaces/{rel.namespace}")
            api.delete(f"/api/v1/namespaces/{rel.lease_namespace}")


def _written(obj: dict[str, Any]) -> tuple[Any, ...]:
    """What ``helm upgrade`` could change: the spec (its generation, where the kind has one: a
    controller's status writes move resourceVersion but not generation), labels, annotations."""
    meta = obj["metadata"]
    spec_version = meta.get("generation", meta["resourceVersion"])
    return spec_version, meta.get("labels"), meta.get("annotations")


def test_install_upgrade_uninstall(release: Release, api: httpx.Client) -> None:
    rel = release
    out = rel.helm("install", rel.name, str(h.CHART), "-n", rel.namespace, "--create-namespace", *rel.values)
    assert "kubectl apply -f" in out.stdout, out.stdout
    assert "examples/05-seti-spike-search.yaml" in out.stdout, out.stdout
    assert "kubectl get ij" in out.stdout

    manifest = rel.manifest()
    kinds = {d["kind"] for d in manifest}
    assert {"Deployment", "DaemonSet", "Service", "ClusterRole", "ValidatingAdmissionPolicy"} <= kinds
    versions = {}
    for doc in manifest:
        r = api.get(path_of(doc, rel.namespace))
        assert r.status_code == 200, f"{doc['kind']}/{doc['metadata']['name']}: {r.text[:300]}"
        versions[path_of(doc, rel.namespace)] = _written(r.json())

    # The admission policies' CEL compiles against the real types, without warnings.
    for doc in manifest:
        if doc["kind"] != "ValidatingAdmissionPolicy":
            continue
        url = path_of(doc, rel.namespace)

        def checked(u: str = url) -> dict[str, Any] | None:
            body = api.get(u).json()
            status: dict[str, Any] = body.get("status", {})
            return status if status.get("observedGeneration") == body["metadata"]["generation"] else None

        status = wait.until(checked, timeout=30, what=f"{url} type-checked")
        assert not status.get("typeChecking", {}).get("expressionWarnings"), json.dumps(status)

    # The same chart and values again: nothing changes.
    rel.helm("upgrade", rel.name, str(h.CHART), "-n", rel.namespace, *rel.values)
    for path, version in versions.items():
        assert _written(api.get(path).json()) == version, f"{path} changed on upgrade"
    assert rel.helm("history", rel.name, "-n", rel.namespace).stdout.count("\n") == 3  # header + 2 revisions

    rel.helm("uninstall", rel.name, "-n", rel.namespace, "--wait", "--timeout", "120s")
    for path in versions:
        r = api.get(path)
        gone = r.status_code == 404 or r.json()["metadata"].get("deletionTimestamp")
        assert gone, f"{path} left behind after uninstall"
    for name in ("inferencejobs.curbside.dev", "vehiclenodes.curbside.dev"):
        r = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        assert r.status_code == 200, f"CRD {name} must outlive the release (CRD policy)"


@pytest.fixture
def restricted_namespace(api: httpx.Client, namespace: str) -> str:
    r = api.patch(
        f"/api/v1/namespaces/{namespace}",
        json={"metadata": {"labels": {RESTRICTED: "restricted", RESTRICTED + "-version": "latest"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    return namespace


def dry_run(rel: Release, namespace: str, pod: dict[str, Any]) -> None:
    out = rel.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=json.dumps(pod))
    assert out.returncode == 0, f"{pod['metadata']['name']}: {out.stderr}"
    assert "would violate" not in out.stderr, out.stderr


@pytest.mark.parametrize("scenario", [None, *h.SCENARIOS], ids=h.scenario_id)
def test_rendered_pods_pass_restricted(
    scenario: Path | None, release: Release, restricted_namespace: str, api: httpx.Client
) -> None:
    docs = h.render(scenario, namespace=restricted_namespace)
    for doc in docs:
        # The pods' ServiceAccounts must exist for the pods to be admitted at all.
        if doc["kind"] == "ServiceAccount":
            r = api.post(f"/api/v1/namespaces/{restricted_namespace}/serviceaccounts", json=doc)
            assert r.status_code in (201, 409), r.text
    templates = h.pod_templates(docs)
    assert templates
    for name, template in templates:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**template.get("metadata", {}), "name": name.lower().replace("/", "-")},
            "spec": template["spec"],
        }
        pod["metadata"]["namespace"] = restricted_namespace
        dry_run(release, restricted_namespace, pod)


def test_inference_pod_passes_restricted(release: Release, restricted_namespace: str) -> None:
    """The pod exactly as the operator builds it (reconcile/pods.py), for the seti example."""
    body = yaml.safe_load((h.REPO / "examples" / "05-seti-spike-search.yaml").read_text())
    body["metadata"].update(namespace=restricted_namespace, uid="00000000-0000-0000-0000-000000000001")
    job = ij.InferenceJob.from_body(body)
    pod = pods.pod_body(
        job,
        "car-00001",
        owner="alice",
        dispatcher_url="http://curbside-dispatcher.curbside-system.svc:8470",
        worker_image="ghcr.io/curbside/worker:0.1.0",
    )
    dry_run(release, restricted_namespace, pod)


def test_the_namespace_really_enforces_restricted(release: Release, restricted_namespace: str) -> None:
    """Control: a pod without the restricted security settings is refused there."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain", "namespace": restricted_namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }
    out = release.kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(pod))
    assert out.returncode != 0
    assert "violates PodSecurity" in out.stderr, out.stderr
