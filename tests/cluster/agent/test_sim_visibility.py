"""The simulator against the session's test bed: every reported change reaches a watcher, in order.

``curbside sim`` runs the session's cars (``CURBSIDE_TEST_CARS``, 1,000 by default) through
three simulated days (Monday 06:00 to Thursday 06:00: rush hours, errands, night charging,
cars falling asleep and vanishing) as its own process with its own identity. A watch on
VehicleNodes stamps each event as it arrives; every change of ``observedAt`` (microseconds,
the car's simulated clock) is mapped back to the wall moment the agent observed it through
the simulator's clock anchor. What must hold at any speed: every report the simulator wrote
is seen, each car's reports arrive in the order it made them, and none is seen before it was
observed. Their difference, the visibility latency, depends on the machine: its p50 and p99
are reported as figures (``figure``), with the API writes per car per minute from the audit log.

What sets the wall time is what the API server sustains, not the simulator: 1,000 cars make
about 27,000 changes per simulated day (22,000 status reports at 5 % battery resolution), up
to 2,000 in the busiest hour and almost none at night. On the two-core machine, beside
kwok's 1,000 fake kubelets, the API server's p99 for a status patch reaches 1 s near 200
reports/s. A fixed speed would be set by the busiest hour (240x: a day in 6 minutes), so the
simulator runs a paced clock (``--pace``): each 2 simulated minutes gets the speed that
yields about ``CURBSIDE_TEST_SIM_PACE`` (100) changes per wall second, up to 3,600x at night.
Three days take about 14 minutes. Near 150 changes/s the API server runs near its knee, and
any few seconds of other work on the two cores leave a backlog it clears slowly; at 100 it
has a third of its capacity spare. The first reports are paced too (``Driver.warm_up``), so
the first seconds inherit no backlog.
Knobs (environment): ``CURBSIDE_TEST_SIM_CARS`` (the
session's cars), ``CURBSIDE_TEST_SIM_DAYS`` (3), ``CURBSIDE_TEST_SIM_PACE`` (100),
``CURBSIDE_TEST_SIM_LEASE_SECONDS`` (60), ``CURBSIDE_TEST_SIM_BATTERY_STEP`` (5 %).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from curbside_sim import driver
from curbside_testbed import audit, bed
from tests.support import wait
from tests.support.agent import SIMULATOR_USER, VN
from tests.support.auditlog import writes_since
from tests.support.figures import Figure
from tests.support.fleet import CARS as SESSION_CARS
from tests.support.watch import Watch

CARS = min(SESSION_CARS, int(os.environ.get("CURBSIDE_TEST_SIM_CARS", str(SESSION_CARS))))
DAYS = float(os.environ.get("CURBSIDE_TEST_SIM_DAYS", "3"))
PACE = float(os.environ.get("CURBSIDE_TEST_SIM_PACE", "100"))
BATTERY_STEP = os.environ.get("CURBSIDE_TEST_SIM_BATTERY_STEP", "5")
LEASE_SECONDS = int(os.environ.get("CURBSIDE_TEST_SIM_LEASE_SECONDS", "60"))


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Pauses:
    """This process's garbage-collection pauses while installed.

    The watch thread stamps events in this process, so a pause here reads as API latency. A
    full collection walks every tracked object, and this process also holds the whole
    session's (every collected test, the earlier tests' leftovers): ``gc.freeze`` moves those
    out of the collector's sight for the run (``unfreeze`` gives them back), and the watch keeps
    only two fields per event, so the run's own collections stay short. The test prints them.
    """

    def __init__(self) -> None:
        self.longest, self.total, self._began = 0.0, 0.0, 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            took = time.perf_counter() - self._began
            self.longest, self.total = max(self.longest, took), self.total + took

    def __enter__(self) -> _Pauses:
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self)
        gc.unfreeze()


def _report(obj: dict[str, Any]) -> dict[str, Any]:
    """What the test reads of a VehicleNode event: its name and the car's ``observedAt``."""
    observed = (obj.get("status") or {}).get("observedAt")
    return {"metadata": {"name": obj["metadata"]["name"]}, "status": {"observedAt": observed}}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# Three simulated days take about 14 minutes (over the suite's default 10 per test), and the
# watch may need up to a minute more to end its stream at teardown.
@pytest.mark.timeout(1500)
def test_every_change_is_seen_in_order(
    testbed: bed.TestBed, api: httpx.Client, crds: Any, watch: Any, tmp_path: Path, figure: Figure
) -> None:
    kubeconfig = testbed.kubeconfig_for(SIMULATOR_USER, groups=("system:masters",))
    clock_file, log = tmp_path / "clock.json", tmp_path / "sim.log"
    events: Watch = watch(VN, timeout_seconds=60, keep=_report)
    argv = [sys.executable, "-m", "curbside_sim.runner", "--cars", str(CARS), "--pace", f"{PACE:g}"]
    argv += ["--duration", f"{DAYS}d", "--kubeconfig", str(kubeconfig), "--clock-file", str(clock_file)]
    argv += ["--lease-seconds", str(LEASE_SECONDS), "--battery-step", BATTERY_STEP, "--report-seconds", "10"]
    with log.open("wb") as out, _Pauses() as pauses:
        sim = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait.until(
                lambda: clock_file.exists() or sim.poll() is not None, timeout=300, what="cars enrolled"
            )
            assert clock_file.exists(), log.read_text()[-3000:]
            clock = driver.SimClock.from_anchor(json.loads(clock_file.read_text()))
            since = audit.mark(testbed.audit_log)
            began = time.time()
            wall = clock.wall_of(clock.start + timedelta(days=DAYS)) - clock.wall0
            wait.until(lambda: sim.poll() is not None, timeout=wall * 1.5 + 60, what=f"{DAYS} simulated days")
            ended = time.time()
        finally:
            if sim.poll() is None:
                sim.kill()
    output = log.read_text()
    print("\n" + output[-2500:])
    assert sim.returncode == 0, output[-3000:]

    latencies: list[float] = []
    arrivals: list[float] = []  # wall seconds after the clock began, for the worst ones' moments
    by_day: dict[int, list[float]] = {}
    last: dict[str, str] = {}
    out_of_order: list[tuple[str, str, str]] = []  # (car, seen after, observedAt)
    while (seen := events.next(timeout=2.0)) is not None:
        status = seen.object.get("status") or {}
        name, observed = seen.object["metadata"]["name"], status.get("observedAt")
        if observed is None or last.get(name) == observed:
            continue  # not a report by the car (or one seen already)
        moment = _parse(observed)
        if name in last and moment < _parse(last[name]):
            out_of_order.append((name, last[name], observed))
        last[name] = observed
        if moment > clock.start:  # warm-up reports were made before the clock started
            latencies.append(seen.at - clock.wall_of(moment))
            arrivals.append(seen.at - clock.wall0)
            by_day.setdefault((moment - clock.start).days, []).append(latencies[-1])

    writes = [w for w in writes_since(api, testbed.audit_log, since) if w.user == SIMULATOR_USER]
    counted = audit.count(writes)
    minutes = (ended - began) / 60
    per_car_minute = {f"{verb} {res}": n / CARS / minutes for (_, verb, res), n in counted.items()}
    p50, p99 = statistics.median(latencies), _percentile(latencies, 0.99)
    rounded = {key: round(value, 3) for key, value in per_car_minute.items()}
    worst = [f"{late:.2f}s@{at:.0f}s" for late, at in sorted(zip(latencies, arrivals, strict=True))[-5:]]
    daily = {day: (len(v), round(_percentile(v, 0.99), 3)) for day, v in sorted(by_day.items())}
    figure(
        "visibility",
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms over {len(latencies)} changes "
        f"(cars={CARS} simulated_days={DAYS:g} pace={PACE:g}/s wall={ended - began:.0f}s)",
    )
    print(
        f"worst={worst} (changes, p99) by day={daily} "
        f"writes/car/min={rounded} watch_restarts={events.restarts} "
        f"gc pauses here: longest {pauses.longest * 1000:.0f}ms total {pauses.total:.1f}s"
    )
    # The fleet really moved, every simulated day: about 22 reports per car and day at 1,000
    # cars on a quiet machine, but fewer on a slow one (the driver steps a busy car once with its
    # latest news), so at least one per car and day.
    assert all(len(by_day.get(day, [])) >= CARS for day in range(int(DAYS))), daily
    patched = counted[SIMULATOR_USER, "patch", "vehiclenodes/status"]
    assert len(latencies) >= patched - CARS  # every report was seen (less the warm-up's, one per car)
    assert out_of_order == [], out_of_order[:5]  # each car's reports arrive in the order it made them
    assert min(latencies) > -0.05  # nothing seen before it was observed (clock mapping is sound)
    renewals = per_car_minute.get("patch leases", 0) + per_car_minute.get("create leases", 0)
    # First renewals are staggered over one period, so each car's Lease creation (one write)
    # may fall inside the window on top of its periodic renewals.
    assert 0.8 * 60 / LEASE_SECONDS <= renewals <= 1.1 * 60 / LEASE_SECONDS + 1 / minutes
    assert set(per_car_minute) <= {"patch leases", "create leases", "patch vehiclenodes/status"}
