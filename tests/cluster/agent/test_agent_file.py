"""``curbside agent`` with a file source against the real API server, as a car runs it.

- A new reading written to the file reaches a watcher of the VehicleNode, stamped with the
  moment the agent observed it (the delay is reported as a figure, not asserted: it depends on
  the machine).
- A car that sits still costs one Lease write per renewal period and no status patch (counted
  from the API server's audit log by the car's own user).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from curbside_testbed import audit, bed, identity
from tests.support import wait
from tests.support.agent import DRIVING, LEASES, PARKED, VN, Car, status_of, write_reading
from tests.support.auditlog import writes_since
from tests.support.figures import Figure
from tests.support.watch import Watch

LEASE_SECONDS = 2


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


def test_a_new_reading_reaches_a_watcher_stamped_when_observed(
    running: tuple[Car, Path], api: httpx.Client, watch: Any, figure: Figure
) -> None:
    car, signals = running
    wait.until(lambda: status_of(api, car.name).get("state") == "Charging", timeout=60, what="first report")
    events: Watch = watch(f"{VN}?fieldSelector=metadata.name%3D{car.name}")
    before = datetime.now(UTC).timestamp()
    written = write_reading(signals, DRIVING)
    seen = None
    while seen is None or (seen.object.get("status") or {}).get("state") != "Driving":
        seen = events.next(timeout=60)
        assert seen is not None, "no Driving report within 60 s"
    status = seen.object["status"]
    observed = _micro(status["observedAt"])
    figure(
        "file changed -> watch saw Driving",
        f"{seen.at - written:.3f}s (after observedAt: {seen.at - observed:.3f}s)",
    )
    assert before <= observed <= seen.at  # the agent's own clock, microsecond precision
    assert status["network"] == "Metered"
    assert "predictedDeparture" not in status


def test_an_unchanged_car_writes_one_lease_renewal_per_period_and_nothing_else(
    running: tuple[Car, Path], api: httpx.Client, testbed: bed.TestBed, figure: Figure
) -> None:
    car, _ = running
    wait.until(lambda: status_of(api, car.name).get("state") == "Charging", timeout=60, what="first report")
    # The first report and the Lease's creation are separate writes: count from after both.
    wait.until(lambda: api.get(f"{LEASES}/{car.name}").status_code == 200, timeout=60, what="Lease created")
    user = identity.username(car.name)
    since = audit.mark(testbed.audit_log)
    window = datetime.now(UTC)

    def renewals() -> list[audit.Write]:
        found = [
            w
            for w in audit.writes_since(testbed.audit_log, since)
            if w.user == user and w.resource == "leases"
        ]
        return found if len(found) >= 6 else []

    wait.until(renewals, timeout=LEASE_SECONDS * 6 + 60, what="six Lease renewals")
    writes = [w for w in writes_since(api, testbed.audit_log, since) if w.user == user]
    counted = audit.count(writes)
    print(f"\nwrites by {user}: {dict(counted)}")
    assert set(counted) == {(user, "patch", "leases")}
    stamps = sorted(_micro(w.timestamp) for w in writes)
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    figure("gaps between Lease renewals", f"{[round(gap, 2) for gap in gaps]} (period {LEASE_SECONDS}s)")
    # Not more than one renewal per period on average (a late renewal may be followed by an
    # early-looking one: the stamps are when the API server answered).
    assert (stamps[-1] - stamps[0]) / len(gaps) >= 0.8 * LEASE_SECONDS, gaps
    lease = api.get(f"{LEASES}/{car.name}").json()["spec"]
    assert (lease["holderIdentity"], lease["leaseDurationSeconds"]) == (car.name, LEASE_SECONDS)
    renewed = datetime.fromisoformat(lease["renewTime"].replace("Z", "+00:00"))
    assert renewed >= window  # the Lease holds a renewal from the counted window
