"""Cluster fixtures: one real test bed per session, one namespace per test.

The session brings up its own test bed (``pytest-<pid>``) with 1,000 car Nodes and tears it
down at the end. To reuse a running one, set ``CURBSIDE_TEST_KUBECONFIG`` to its kubeconfig:
it is refused unless its context is a test bed's, so tests can never touch a real cluster.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import httpx
import pytest

from curbside_testbed import bed, guard
from tests.cluster.api.conftest import crds  # noqa: F401  (session fixture: CRDs applied and served)

CARS = int(os.environ.get("CURBSIDE_TEST_CARS", "1000"))
SILENCEABLE = (f"car-{CARS - 1:05d}", f"car-{CARS - 2:05d}")
"""The session's two last cars: the bench baseline test silences one of them for good (kwok
stops heart-beating it), so no other test may count on them."""


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
        tb.up(cars=CARS, timeout=900)
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
