"""Fixtures for the agent against a real API server: enrolled cars, a watch that timestamps events.

The agent runs with a real car's identity (``identity.enroll_car``: x509 user
``curbside:car:<car>``, the per-car RBAC and the admission policy from config/rbac), so these
tests also prove that what the agent writes is allowed to a car and nothing more is needed.
The simulator runs as its own process with its own admin identity (``curbside-simulator``),
so the audit log tells its writes apart.

``Watch`` follows a collection in a thread and stamps every event with ``time.time()`` the
moment its line arrives: the "seen" side of a visibility latency.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from curbside_testbed import audit, bed, identity
from tests.cluster import wait
from tests.cluster.api import conftest as api_conftest
from tests.cluster.identity import conftest as identity_conftest

crds = api_conftest.crds
"""The API tests' session fixture that applies crds/*.yaml and waits until they are served."""
rbac_applied = identity_conftest.rbac_applied
"""config/rbac (car RBAC and the admission policy) applied and type-checked."""

REPO = Path(__file__).resolve().parents[3]
VN = "/apis/curbside.dev/v1alpha1/vehiclenodes"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/curbside-cars/leases"
SIMULATOR_USER = "curbside-simulator"


@dataclass(frozen=True)
class Seen:
    """One watch event and the wall time its line arrived."""

    at: float
    type: str
    object: dict[str, Any]


class Watch:
    """A watch on ``path`` from ``resource_version`` in a background thread; events in ``events``.

    When the API server ends the stream (a timeout, or it dropped a watcher that fell behind),
    the watch resumes from the last resourceVersion it saw, so no event is lost; events that
    arrive late that way are stamped late, as a real client would see them. ``restarts``
    counts resumptions.

    ``keep`` cuts each object down to what the test reads before it is queued. A long watch
    (the simulator's 60,000 events) would otherwise hold every whole object until the test
    reads them (over a gigabyte of dicts), and Python's full garbage collections over that
    heap pause this thread for seconds: events then look late that were not.
    """

    def __init__(
        self,
        client: httpx.Client,
        path: str,
        *,
        resource_version: str,
        timeout_seconds: int = 5,
        keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.client, self.path, self.resource_version = client, path, resource_version
        self.timeout_seconds = timeout_seconds
        self.keep = keep
        self.events: queue.Queue[Seen] = queue.Queue()
        self.error: BaseException | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"watch {path}", daemon=True)
        self._thread.start()

    def _stream(self) -> None:
        # A server-side timeout ends the stream every few seconds (it resumes at once), so the
        # thread notices stop() promptly and its socket is never closed under it by another thread.
        # A latency measurement asks for longer streams: each resumption delays what happens
        # while it reconnects.
        params = {
            "watch": "1",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.timeout_seconds),
        }
        with self.client.stream("GET", self.path, params=params, timeout=None) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                at = time.time()
                if self._stop.is_set():
                    return
                if not line:
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise RuntimeError(f"watch {self.path}: {event['object'].get('message')}")
                self.resource_version = event["object"]["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    kept = event["object"] if self.keep is None else self.keep(event["object"])
                    self.events.put(Seen(at=at, type=event["type"], object=kept))

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self._stream()
            except (httpx.HTTPError, json.JSONDecodeError, RuntimeError) as exc:
                if not self._stop.is_set():
                    self.error = exc
                return
            self.restarts += 1

    def next(self, *, timeout: float) -> Seen | None:
        """The next event, or None when none came within ``timeout`` (a failed watch raises)."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            assert self.error is None, f"watch {self.path} failed: {self.error}"
            return None

    def stop(self) -> None:
        self._stop.set()


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


@dataclass
class Car:
    """A test car: enrolled (its own kubeconfig), with a VehicleNode made by the admin."""

    name: str
    kubeconfig: Path


def vehiclenode(name: str) -> dict[str, Any]:
    """The example car (examples/01-vehiclenode.yaml), renamed, with a policy that holds at any
    hour (no time windows, no energy budget), so whether it is eligible depends on its signals."""
    body: dict[str, Any] = yaml.safe_load((REPO / "examples" / "01-vehiclenode.yaml").read_text())
    body["metadata"] = {"name": name}
    body["spec"]["policy"] = {"minBatteryPercent": 50, "reserveBatteryPercent": 30, "timeZone": "UTC"}
    return body


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


def status_of(api: httpx.Client, name: str) -> dict[str, Any]:
    r = api.get(f"{VN}/{name}")
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json().get("status") or {}
    return found


def writes_since(api: httpx.Client, log: Path, since: audit.Mark) -> list[audit.Write]:
    """Every write in the audit log since ``since``, once the batched log has caught up.

    A marker ConfigMap is written last; when it shows up in the log, so has everything before.
    """
    marker = f"audit-flush-{os.urandom(3).hex()}"
    r = api.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": marker}})
    assert r.status_code == 201, r.text

    def flushed() -> list[audit.Write] | None:
        found = audit.writes_since(log, since)
        return found if any(w.name == marker for w in found) else None

    try:
        found = wait.until(flushed, timeout=20, what="the audit log to flush") or []
        return [w for w in found if w.name != marker]
    finally:
        api.delete(f"/api/v1/namespaces/default/configmaps/{marker}")
