"""Fixtures for the operator's fleet side: a real operator process and cars that report.

The operator runs as its own process (``python -m curbside_operator``) with its own
x509 identity, so the audit log tells its writes apart from the test's. Cars are played by
``Cars``: it renews their Leases and patches their status the way an agent does, so these
tests exercise the operator alone (the agent has its own tests).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from curbside_operator.reconcile.vehiclenode import ELIGIBLE_LABEL
from curbside_testbed import bed
from tests.cluster import wait

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "curbside-cars"
OPERATOR_USER = "curbside-operator"
GRACE_SECONDS = 6.0
VN = "/apis/curbside.dev/v1alpha1/vehiclenodes"
CHARGING = {"state": "Charging", "batteryPercent": 80, "charging": True, "network": "Unmetered"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def micro(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class OperatorProcess:
    """The operator as a child process; ``kill`` and ``start`` play a crash and its restart."""

    def __init__(self, env: dict[str, str], log: Path, metrics_port: int, dispatcher_port: int) -> None:
        self.env, self.log, self.metrics_port = env, log, metrics_port
        self.dispatcher_url = f"http://127.0.0.1:{dispatcher_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "curbside_operator"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def serving() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, f"operator exited:\n{self.log.read_text()[-3000:]}"
            try:
                self.metric("curbside_fleet_silent_cars")
                httpx.get(f"{self.dispatcher_url}/healthz", timeout=5)
            except httpx.HTTPError:
                return False
            return True

        wait.until(serving, timeout=60, what="operator metrics and dispatcher endpoints")

    def kill(self) -> None:
        """SIGKILL: no cleanup, exactly like a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.fixture(scope="module")
def operator(
    testbed: bed.TestBed, crds: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """The operator as its own process; a test module may set ``GRACE_SECONDS`` for it."""
    grace = getattr(request.module, "GRACE_SECONDS", GRACE_SECONDS)
    with testbed.http(timeout=300) as api:  # deleting thousands of Leases takes a while
        r = api.post("/api/v1/namespaces", json={"metadata": {"name": LEASE_NAMESPACE}})
        assert r.status_code in (201, 409), r.text
        # Leases left by earlier tests would look like a silent fleet (a partition), and their
        # VehicleNodes carry other owners' policies: start clean, the operator re-enrolls every
        # car Node from its annotations.
        r = api.delete(f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases")
        assert r.status_code == 200, r.text
        r = api.delete(VN)
        assert r.status_code == 200, r.text
    kubeconfig = testbed.kubeconfig_for(OPERATOR_USER, groups=("system:masters",))
    port, dispatcher_port = _free_port(), _free_port()
    folder = tmp_path_factory.mktemp("operator")
    env = dict(
        os.environ,
        KUBECONFIG=str(kubeconfig),
        CURBSIDE_CAR_LEASE_GRACE_SECONDS=str(grace),
        CURBSIDE_SWEEP_SECONDS="5",
        CURBSIDE_METRICS_PORT=str(port),
        CURBSIDE_LEDGER_PATH=str(folder / "ledger.sqlite3"),
        CURBSIDE_DISPATCHER_HOST="127.0.0.1",
        CURBSIDE_DISPATCHER_PORT=str(dispatcher_port),
        CURBSIDE_DISPATCHER_URL=f"http://127.0.0.1:{dispatcher_port}",
        **getattr(request.module, "OPERATOR_ENV", {}),
    )
    op = OperatorProcess(env, folder / "operator.log", port, dispatcher_port)
    op.start()
    yield op
    op.stop()


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


@pytest.fixture(scope="module")
def cars(testbed: bed.TestBed, request: pytest.FixtureRequest) -> Iterator[Cars]:
    """Scripted cars; a test module may set ``RENEW_SECONDS`` (many cars: renew less often)."""
    with testbed.http() as api:
        c = Cars(api, period=getattr(request.module, "RENEW_SECONDS", 1.0))
        yield c
        c.stop.set()
        c.thread.join(timeout=5)
        c.pool.shutdown(wait=False, cancel_futures=True)


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
