"""``curbside agent`` with a file source against the real API server, as a car runs it.

- A new reading written to the file shows in the VehicleNode within a second (seen by a watch).
- A car that sits still costs exactly one Lease write per renewal period and no status patch
  (counted from the API server's audit log by the car's own user).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from curbside_testbed import audit, bed, identity
from tests.cluster import wait
from tests.cluster.agent.conftest import LEASES, VN, Car, Watch, status_of, writes_since

LEASE_SECONDS = 2
PARKED = {"gear": "P", "batteryPercent": 80.4, "charging": True, "chargerPowerKw": 11, "network": "unmetered"}
DRIVING = {
    **PARKED,
    "gear": "D",
    "speedKph": 30,
    "charging": False,
    "chargerPowerKw": 0,
    "network": "metered",
}


def write_reading(path: Path, doc: dict[str, Any]) -> float:
    """Replace the gateway's file atomically (as a gateway must); the wall time it changed."""
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps({"timestamp": datetime.now(UTC).isoformat(), **doc}))
    os.replace(scratch, path)
    return datetime.now(UTC).timestamp()


@pytest.fixture
def running(car: Car, tmp_path: Path) -> Iterator[tuple[Car, Path]]:
    """``curbside agent`` for ``car`` (its own credentials) reading ``car.json``, until the test ends."""
    signals = tmp_path / "car.json"
    write_reading(signals, PARKED)
    log = (tmp_path / "agent.log").open("wb")
    argv = [
        sys.executable,
        "-m",
        "curbside_agent",
        "--vehicle",
        car.name,
        "--source",
        f"file:{signals}",
    ]
    argv += [
        "--kubeconfig",
        str(car.kubeconfig),
        "--lease-seconds",
        str(LEASE_SECONDS),
        "--metrics-port",
        "0",
    ]
    proc = subprocess.Popen([*argv, "--poll-seconds", "0.05"], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield car, signals
    finally:
        proc.terminate()
        code = proc.wait(timeout=20)
        log.close()
        assert code == 0, (tmp_path / "agent.log").read_text()[-3000:]


def _micro(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_new_reading_is_visible_within_a_second(
    running: tuple[Car, Path], api: httpx.Client, watch: Any
) -> None:
    car, signals = running
    wait.until(lambda: status_of(api, car.name).get("state") == "Charging", timeout=60, what="first report")
    events: Watch = watch(f"{VN}?fieldSelector=metadata.name%3D{car.name}")
    written = write_reading(signals, DRIVING)
    seen = None
    while seen is None or (seen.object.get("status") or {}).get("state") != "Driving":
        seen = events.next(timeout=5)
        assert seen is not None, "no Driving report within 5 s"
    status = seen.object["status"]
    observed = _micro(status["observedAt"])
    print(
        f"\nfile changed -> watch saw Driving: {seen.at - written:.3f}s "
        f"(after observedAt: {seen.at - observed:.3f}s)"
    )
    assert seen.at - written <= 1.0
    assert written - 0.2 <= observed <= seen.at  # the agent's own clock, microsecond precision
    assert status["network"] == "Metered"
    assert "predictedDeparture" not in status


def test_an_unchanged_car_writes_one_lease_renewal_per_period_and_nothing_else(
    running: tuple[Car, Path], api: httpx.Client, testbed: bed.TestBed
) -> None:
    car, _ = running
    wait.until(lambda: status_of(api, car.name).get("state") == "Charging", timeout=60, what="first report")
    # The first report and the Lease's creation are separate writes: count from after both.
    wait.until(lambda: api.get(f"{LEASES}/{car.name}").status_code == 200, timeout=60, what="Lease created")
    user = identity.username(car.name)
    since = audit.mark(testbed.audit_log)

    def renewals() -> list[audit.Write]:
        found = [
            w
            for w in audit.writes_since(testbed.audit_log, since)
            if w.user == user and w.resource == "leases"
        ]
        return found if len(found) >= 6 else []

    wait.until(renewals, timeout=LEASE_SECONDS * 6 + 20, what="six Lease renewals")
    writes = [w for w in writes_since(api, testbed.audit_log, since) if w.user == user]
    counted = audit.count(writes)
    print(f"\nwrites by {user}: {dict(counted)}")
    assert set(counted) == {(user, "patch", "leases")}
    stamps = sorted(_micro(w.timestamp) for w in writes)
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert all(LEASE_SECONDS - 0.3 <= gap <= LEASE_SECONDS + 0.6 for gap in gaps), gaps
    lease = api.get(f"{LEASES}/{car.name}").json()["spec"]
    assert (lease["holderIdentity"], lease["leaseDurationSeconds"]) == (car.name, LEASE_SECONDS)
    renewed = datetime.fromisoformat(lease["renewTime"].replace("Z", "+00:00"))
    assert datetime.now(UTC) - renewed < timedelta(seconds=LEASE_SECONDS + 2)
