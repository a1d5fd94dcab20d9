"""The session's fleet as the cluster tests see it: its size, scripted cars, the operator process.

Why this exists: the fleet, job and observability tests all run the real operator
(``curbside_testbed.operator``) with its own x509 identity, so the audit log tells its writes
apart from the test's, and play the cars with ``Cars``: it renews their Leases and patches their
status the way an agent does, so these tests exercise the operator alone (the agent has its own
tests). The ``operator`` and ``cars`` fixtures (tests/cluster/conftest.py) are built from here.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from curbside_operator.reconcile.vehiclenode import ELIGIBLE_LABEL
from curbside_testbed import bed
from curbside_testbed.operator import OperatorProcess
from tests.support import wait

log = logging.getLogger(__name__)

CARS = int(os.environ.get("CURBSIDE_TEST_CARS", "1000"))
"""The session's car Nodes (``car-00000`` on)."""
SILENCEABLE = (f"car-{CARS - 1:05d}", f"car-{CARS - 2:05d}")
"""The session's two last cars: the bench baseline test silences one of them for good (kwok
stops heart-beating it), so no other test may count on them."""

LEASE_NAMESPACE = "curbside-cars"
OPERATOR_USER = "curbside-operator"
GRACE_SECONDS = 6.0
"""The operator's Lease grace unless a test module sets ``GRACE_SECONDS``."""
VN = "/apis/curbside.dev/v1alpha1/vehiclenodes"
CHARGING = {"state": "Charging", "batteryPercent": 80, "charging": True, "network": "Unmetered"}


def micro(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def start_operator(
    testbed: bed.TestBed, work: Path, *, grace: float, env: dict[str, str] | None = None
) -> OperatorProcess:
    """A fresh operator on the test bed, serving: the car Leases and VehicleNodes earlier tests
    left are deleted first (the operator re-enrolls every car Node from its annotations)."""
    with testbed.http(timeout=300) as api:  # deleting thousands of Leases takes a while
        r = api.post("/api/v1/namespaces", json={"metadata": {"name": LEASE_NAMESPACE}})
        assert r.status_code in (201, 409), r.text
        # Leases left by earlier tests would look like a silent fleet (a partition), and their
        # VehicleNodes carry other owners' policies: start clean.
        r = api.delete(f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases")
        assert r.status_code == 200, r.text
        r = api.delete(VN)
        assert r.status_code == 200, r.text
    op = OperatorProcess(
        kubeconfig=testbed.kubeconfig_for(OPERATOR_USER, groups=("system:masters",)),
        work=work,
        grace=grace,
        env={"CURBSIDE_SWEEP_SECONDS": "5", **(env or {})},
    )
    op.start(wait=60)
    return op


class Cars:
    """Plays the agents of some cars: Leases renewed every ``period`` s, status patched on demand."""

    def __init__(self, api: httpx.Client, *, period: float = 1.0) -> None:
        self.api, self.period = api, period
        self.renewing: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="renew")
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def renew(self, name: str) -> None:
        body = {
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": 10,
                "renewTime": micro(datetime.now(UTC)),
            },
        }
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
        r = self.api.patch(
            f"{path}/{name}",
            json={"spec": body["spec"]},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if r.status_code == 404:
            r = self.api.post(path, json=body)
        assert r.status_code in (200, 201), r.text

    def keep_alive(self, *names: str) -> None:
        for name in names:
            self.renew(name)
        with self.lock:
            self.renewing |= set(names)

    def silence(self, *names: str) -> None:
        with self.lock:
            self.renewing -= set(names)

    def close(self) -> None:
        """Stop renewing (the fixture's teardown)."""
        self.stop.set()
        self.thread.join(timeout=5)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self.stop.wait(self.period):
            with self.lock:
                names = sorted(self.renewing)
            # Eight at a time: one after another, 200 renewals on a loaded API server take longer
            # than the grace period, and the fleet looks partitioned.
            list(self.pool.map(self._renew_quietly, names))

    def _renew_quietly(self, name: str) -> None:
        try:  # a loaded API server may drop a connection: the next round renews again
            self.renew(name)
        except (httpx.HTTPError, AssertionError) as error:
            log.warning("renewing %s: %s", name, error)

    def report(self, name: str, **status: Any) -> datetime:
        """Patch the agent-owned status fields; returns the observedAt sent."""
        at = datetime.now(UTC)
        r = self.api.patch(
            f"{VN}/{name}/status",
            json={"status": {**status, "observedAt": micro(at)}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert r.status_code == 200, r.text
        return at


def bring_up(api: httpx.Client, fleet: Cars, names: list[str]) -> list[str]:
    """Cars that heartbeat and report charging, each awaited until Ready and eligible.

    Eligible means both of the operator's writes have landed: the VehicleNode's status and
    then the Node's ``curbside.dev/eligible`` label. A caller that starts counting the
    operator's writes after this sees none left over from bringing the cars up.
    """
    for name in names:  # the operator enrolls every car Node it sees: wait for these
        wait.until(
            lambda n=name: api.get(f"{VN}/{n}").status_code == 200, timeout=60, what=f"{name} enrolled"
        )
    fleet.keep_alive(*names)
    for name in names:
        fleet.report(name, **CHARGING)
    for name in names:
        wait.until(
            lambda n=name: api.get(f"{VN}/{n}").json()["status"].get("operator", {}).get("eligible"),
            timeout=60,
            what=f"{name} eligible",
        )
        wait.until(
            lambda n=name: api.get(f"/api/v1/nodes/{n}").json()["metadata"]["labels"].get(ELIGIBLE_LABEL)
            == "true",
            timeout=60,
            what=f"{name}'s Node labelled eligible",
        )
    return names
