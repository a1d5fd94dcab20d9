"""Fixtures for the agent against a real API server: enrolled cars, a watch that timestamps events.

``car`` enrolls a fresh car with a real car's identity (tests/support/agent.py says why);
``watch(path)`` follows a collection from its current resourceVersion with
``tests.support.watch.Watch``, which stamps every event the moment its line arrives.
``crds`` and ``rbac_applied`` are the session's (tests/cluster/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from curbside_testbed import bed, identity
from tests.support.agent import LEASES, VN, Car, vehiclenode
from tests.support.watch import Watch


@pytest.fixture
def watch(testbed: bed.TestBed) -> Iterator[Any]:
    """``watch(path)`` starts a watch from the collection's current resourceVersion."""
    clients: list[httpx.Client] = []
    watches: list[Watch] = []

    def start(
        path: str, *, timeout_seconds: int = 5, keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    ) -> Watch:
        client = testbed.http(timeout=30)
        clients.append(client)
        # A list at resourceVersion 0 is served by the API server's watch cache, once that cache
        # is filled. Without it, a watch on a just-created CRD can start from a version older
        # than the cache's first one and fail at once with "too old resource version".
        assert client.get(path, params={"resourceVersion": "0", "limit": 1}).status_code == 200
        r = client.get(path, params={"limit": 1})
        assert r.status_code == 200, r.text
        version = r.json()["metadata"]["resourceVersion"]
        follower = Watch(client, path, resource_version=version, timeout_seconds=timeout_seconds, keep=keep)
        watches.append(follower)
        return follower

    yield start
    for follower in watches:
        follower.stop()
    for follower in watches:
        # Closing a client while its thread still reads would free the socket's descriptor
        # for the next test's connection, and the old thread would read its bytes.
        follower._thread.join(timeout=follower.timeout_seconds + 30)
    for client in clients:
        client.close()


@pytest.fixture
def car(testbed: bed.TestBed, api: httpx.Client, rbac_applied: None) -> Iterator[Car]:
    """A fresh car for this test: identity, RBAC, VehicleNode; all removed afterwards."""
    name = f"agt-{os.urandom(3).hex()}"
    r = api.post("/api/v1/namespaces", json={"metadata": {"name": "curbside-cars"}})
    assert r.status_code in (201, 409), r.text
    r = api.post(VN, json=vehiclenode(name))
    assert r.status_code == 201, r.text
    kubeconfig = identity.enroll_car(testbed, name)
    yield Car(name=name, kubeconfig=kubeconfig)
    api.delete(f"{VN}/{name}")
    api.delete(f"{LEASES}/{name}")
    identity.unenroll_car(testbed, name)
