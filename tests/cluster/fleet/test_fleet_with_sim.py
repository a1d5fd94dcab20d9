"""The operator and the simulated fleet together: several simulated days of real mobility.

Issue 4's acceptance, operator side, with the real agents of ``curbside sim`` (commuters,
night charging, errands, sleepers, cars that vanish without a word) instead of scripted
cars: the operator writes only for cars whose situation changed, and a car that falls
silent is Offline (``Ready=False/LeaseExpired``) within the grace period + 5 s.
The audit log is the witness for both.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from curbside_testbed import audit, bed
from tests.cluster import wait
from tests.cluster.fleet.conftest import LEASE_NAMESPACE, OPERATOR_USER, VN, OperatorProcess

CARS = int(os.environ.get("CURBSIDE_TEST_CARS", "1000"))
DAYS = float(os.environ.get("CURBSIDE_TEST_SIM_DAYS", "2"))
WALL = float(os.environ.get("CURBSIDE_TEST_SIM_WALL", "60"))
LEASE_SECONDS = 10
GRACE_SECONDS = 25.0  # read by the operator fixture: 2.5 renewal periods
SIM_USER = "curbside-sim-fleet"
SETTLE = 10.0


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_operator_writes_only_for_changed_cars_and_offlines_silent_ones(
    testbed: bed.TestBed, api: httpx.Client, operator: OperatorProcess, tmp_path: Path
) -> None:
    speed = DAYS * 86_400 / WALL
    kubeconfig = testbed.kubeconfig_for(SIM_USER, groups=("system:masters",))
    clock_file, log = tmp_path / "clock.json", tmp_path / "sim.log"
    argv = [sys.executable, "-m", "curbside_agent.sim.runner", "--cars", str(CARS), "--speed", f"{speed:.0f}"]
    argv += ["--duration", f"{DAYS}d", "--kubeconfig", str(kubeconfig), "--clock-file", str(clock_file)]
    argv += ["--lease-seconds", str(LEASE_SECONDS), "--battery-step", "5", "--report-seconds", "10"]
    with log.open("wb") as out:
        sim = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait.until(lambda: clock_file.exists() or sim.poll() is not None, timeout=300, what="cars enrolled")
        assert clock_file.exists(), log.read_text()[-3000:]
        # Changes count from the start; operator writes only after SETTLE seconds, so that a
        # write reacting to a report from before the window is not mistaken for a gratuitous one.
        leases_path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
        wait.until(
            lambda: len(api.get(leases_path).json()["items"]) >= CARS * 0.9, timeout=120, what="cars' Leases"
        )
        started = audit.mark(testbed.audit_log)
        time.sleep(SETTLE)  # a fixed measurement offset, not a wait for a condition
        since = audit.mark(testbed.audit_log)
        began = time.monotonic()
        wait.until(lambda: sim.poll() is not None, timeout=WALL * 3 + 60, what=f"{DAYS} simulated days")
        minutes = (time.monotonic() - began) / 60
    finally:
        if sim.poll() is None:
            sim.kill()
    assert sim.returncode == 0, log.read_text()[-3000:]

    wait.until(lambda: audit.writes_since(testbed.audit_log, since), timeout=10, what="audit flush")
    writes = audit.writes_since(testbed.audit_log, started)
    agent_patches = collections.Counter(
        w.name
        for w in writes
        if w.user == SIM_USER and w.resource == "vehiclenodes" and w.subresource == "status"
    )
    renewed_at: dict[str, list[datetime]] = collections.defaultdict(list)
    for w in writes:
        if w.user == SIM_USER and w.resource == "leases" and w.code < 300:
            renewed_at[w.name].append(_time(w.timestamp))
    by_operator = collections.Counter(
        w.name for w in audit.writes_since(testbed.audit_log, since) if w.user == OPERATOR_USER
    )
    # A car "changed" if its agent reported something, or its Lease paused for longer than
    # the grace period (it went quiet, and perhaps came back): both are news to the operator.
    end = datetime.now(UTC)
    total_minutes = minutes + SETTLE / 60

    def paused(name: str) -> bool:
        stamps = sorted(renewed_at.get(name, []))
        gaps = [b - a for a, b in zip(stamps, [*stamps[1:], end], strict=True)]
        return not stamps or max(gaps) > timedelta(seconds=GRACE_SECONDS - 1)

    quiet = {name for name in by_operator.keys() | agent_patches.keys() | renewed_at.keys() if paused(name)}
    appeared = {
        w.name for w in writes if w.user == SIM_USER and w.resource == "leases" and w.verb == "create"
    }
    changed = set(agent_patches) | quiet | appeared
    unchanged_written = {name: n for name, n in by_operator.items() if name not in changed}
    per_car_minute = {
        "agent status": sum(agent_patches.values()) / CARS / total_minutes,
        "agent lease": sum(len(v) for v in renewed_at.values()) / CARS / total_minutes,
        "operator": sum(by_operator.values()) / CARS / minutes,
    }
    assert len(changed) < CARS  # some cars kept still, so the next assertion means something
    print(
        f"cars={CARS} days={DAYS:g} wall={minutes * 60:.0f}s writes/car/min "
        f"{ {k: round(v, 2) for k, v in per_car_minute.items()} }; {len(changed)} changed, "
        f"{CARS - len(changed)} unchanged, {len(quiet)} paused their Lease"
    )
    assert len(agent_patches) > CARS // 2  # the fleet really moved
    assert unchanged_written == {}

    # Every car silent for longer than grace + 5 s by now is Offline, and was marked in time.
    now = datetime.now(UTC)
    leases = api.get(f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases").json()["items"]
    silent = {
        lease["metadata"]["name"]: _time(lease["spec"]["renewTime"])
        for lease in leases
        if now - _time(lease["spec"]["renewTime"]) > timedelta(seconds=GRACE_SECONDS + 5)
    }
    late: dict[str, float] = {}
    for name, renewed in silent.items():
        obj: dict[str, Any] = api.get(f"{VN}/{name}").json()
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "LeaseExpired", (name, ready)
        delay = (_time(ready["lastTransitionTime"]) - renewed).total_seconds()
        if delay > GRACE_SECONDS + 5 + 1:  # +1: lastTransitionTime has whole seconds
            late[name] = delay
    print(f"{len(silent)} silent cars at the end, all Offline, none later than grace + 5 s")
    assert late == {}
