"""Cluster fixtures: one real test bed per session, one namespace per test, and what several
folders share (the CRDs, config/rbac, the operator process, scripted cars).

The session brings up its own test bed (``pytest-<pid>``) with ``CURBSIDE_TEST_CARS`` (1,000)
car Nodes and tears it down at the end. To reuse a running one, set ``CURBSIDE_TEST_KUBECONFIG``
to its kubeconfig: it is refused unless its context is a test bed's, so tests can never touch a
real cluster.

The CRDs are applied with server-side apply (so a reused test bed gets the current ones), then
awaited until Established and served, like ``kubectl wait --for=condition=Established``.
config/rbac is applied with the test bed's own kubectl (``apply --server-side -k``), the way a
user applies it, so the kustomization itself is tested, and awaited until its admission policy
is type-checked.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from curbside_testbed import bed, build, guard
from curbside_testbed.operator import OperatorProcess
from tests.support import fleet, wait
from tests.support.car_identity import POLICY, ok

REPO = Path(__file__).resolve().parents[2]
GROUP_VERSION = "/apis/curbside.dev/v1alpha1"


@pytest.fixture(scope="session")
def testbed() -> Iterator[bed.TestBed]:
    external = os.environ.get("CURBSIDE_TEST_KUBECONFIG")
    if external:
        name = guard.testbed_name(external)
        tb = bed.TestBed(name)
        yield tb
        return
    tb = bed.TestBed(f"pytest-{os.getpid()}")
    try:
        tb.up(cars=fleet.CARS, timeout=900)
        yield tb
    finally:
        tb.down()


@pytest.fixture
def api(testbed: bed.TestBed) -> Iterator[httpx.Client]:
    """An admin HTTP client for the session's API server."""
    with testbed.http() as client:
        yield client


@pytest.fixture
def namespace(api: httpx.Client, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for this test, deleted afterwards."""
    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{base}-{os.urandom(3).hex()}"
    r = api.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert r.status_code == 201, r.text
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


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


@pytest.fixture(scope="session")
def rbac_applied(testbed: bed.TestBed, crds: list[dict[str, Any]]) -> None:
    """config/rbac (car RBAC and the admission policy) applied with kubectl, and the admission
    policy compiled without warnings."""
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


@pytest.fixture(scope="module")
def operator(
    testbed: bed.TestBed, crds: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """The operator as its own process (``curbside_testbed.operator``), one per test module, on
    a fleet with no Leases left by earlier tests. A test module may set ``GRACE_SECONDS`` (the
    Lease grace) and ``OPERATOR_ENV`` (more settings) for it."""
    op = fleet.start_operator(
        testbed,
        tmp_path_factory.mktemp("operator"),
        grace=getattr(request.module, "GRACE_SECONDS", fleet.GRACE_SECONDS),
        env=getattr(request.module, "OPERATOR_ENV", {}),
    )
    yield op
    op.stop()


@pytest.fixture(scope="module")
def cars(testbed: bed.TestBed, request: pytest.FixtureRequest) -> Iterator[fleet.Cars]:
    """Scripted cars (``tests.support.fleet.Cars``); a test module may set ``RENEW_SECONDS``
    (many cars: renew less often). The identity tests' own ``cars`` fixture overrides this one
    in tests/cluster/identity."""
    with testbed.http() as api:
        scripted = fleet.Cars(api, period=getattr(request.module, "RENEW_SECONDS", 1.0))
        yield scripted
        scripted.close()
