"""Cluster fixtures for the API tests: the CRDs applied once per session, and kubectl.

The CRDs are applied with server-side apply (so a reused test bed gets the current ones),
then awaited until Established and served, like ``kubectl wait --for=condition=Established``.
kubectl gets its own discovery cache per session, so it never shows a stale schema.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from curbside_testbed import bed, build
from tests.cluster import wait

REPO = Path(__file__).resolve().parents[3]
GROUP_VERSION = "/apis/curbside.dev/v1alpha1"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _established(client: httpx.Client, name: str) -> bool:
    r = client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    # A just-created CRD can have `status.conditions: null`.
    conditions = (r.json().get("status", {}).get("conditions") or []) if r.status_code == 200 else []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _served(client: httpx.Client, plurals: set[str]) -> bool:
    r = client.get(GROUP_VERSION)
    return r.status_code == 200 and plurals <= {res["name"] for res in r.json()["resources"]}


@pytest.fixture(scope="session")
def crds(testbed: bed.TestBed) -> list[dict[str, Any]]:
    """Every ``crds/*.yaml`` applied to the test bed and served."""
    docs = []
    with testbed.http() as client:
        for path in sorted((REPO / "crds").glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            r = client.patch(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{doc['metadata']['name']}",
                params={"fieldManager": "curbside-tests", "force": "true"},
                content=path.read_bytes(),
                headers={"Content-Type": "application/apply-patch+yaml"},
            )
            assert r.status_code in (200, 201), f"{path.name}: {r.text}"
            docs.append(doc)
        for doc in docs:
            name = doc["metadata"]["name"]

            def established(crd: str = name) -> bool:
                return _established(client, crd)

            wait.until(established, timeout=30, what=f"CRD {name} Established")
        plurals = {d["spec"]["names"]["plural"] for d in docs}
        wait.until(lambda: _served(client, plurals), timeout=30, what=f"{GROUP_VERSION} serving {plurals}")
    return docs


@pytest.fixture(autouse=True)
def _crds_applied(crds: list[dict[str, Any]]) -> None:
    """Every API test runs with the CRDs in place."""


@pytest.fixture(scope="session")
def kubectl(testbed: bed.TestBed, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """Run the test bed's own kubectl (same version as the API server) against it."""
    binary = build.toolchain().bin_dir / "kubectl"
    cache = tmp_path_factory.mktemp("kubectl-cache")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(binary), "--kubeconfig", str(testbed.kubeconfig), "--cache-dir", str(cache), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done

    return run
