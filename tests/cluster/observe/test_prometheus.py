"""Observability: a real Prometheus scrapes the operator, the agents and the workers
during a short simulated run, and every panel of every generated dashboard finds data.

Debian's ``prometheus`` runs on loopback, scraping the operator's ``/metrics`` and the fleet
simulator's (``curbside sim --metrics-port``: the real agents of 40 cars and the real workers
it runs for the operator's inference pods, against a real Triton). The simulated morning
starts as commuters leave, on a fast clock, while an InferenceJob runs on the simulated cars
(two agreeing replicas per unit, so owners earn credit): cars report, go ineligible, leave,
workers commit. The simulated clock is far from the wall
clock, so the operator (rightly) times no reaction to the simulated cars' reports; two
scripted cars in a region of their own report in wall time and drive off holding a second
job's pods, so the reaction latencies are real too. Then every query of every panel goes
through Prometheus' HTTP API as Grafana would send it (instant for stat and bar panels, a
range over the run otherwise, ``$__rate_interval`` filled in) and must return a finite sample.

The simulated cars' job runs two agreeing replicas per unit, so the trust panels (owners'
credit, results by verdict, replication overhead) have data too.

The alert rules are checked the same way: ``promtool check rules`` on the rule groups of the
chart's rendered PrometheusRule, and every alert expression evaluated by the live server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from curbside_operator import metrics
from curbside_testbed import bed, fleet, serve
from curbside_testbed.operator import OperatorProcess
from tests.support import helm as h
from tests.support import prometheus as prom
from tests.support import wait
from tests.support.fleet import CHARGING, Cars, bring_up
from tests.support.jobs import job_body, jobs_path, pods

CARS, SEED, SPEED = 40, 3, 120.0
START = datetime(2025, 3, 3, 6, 30, tzinfo=UTC)  # a Monday: commuters leave within the run
LEASE_SECONDS = 5
GRACE_SECONDS = 15.0  # read by the operator fixture: three renewal periods
OPERATOR_ENV = {"CURBSIDE_EXPECTED_UNIT_SECONDS": "5", "CURBSIDE_STATUS_INTERVAL_SECONDS": "1"}
SCRAPE_S, STEP_S = 2.0, 2.0
SMALL = {"channels": "256", "timeSteps": "64", "maxDrift": "8", "signalsPerUnit": "1"}
DATA_TIMEOUT = 300.0
SCRIPTED, REGION = ["car-00090", "car-00091"], "observe-lot"
REACTIONS = (metrics.STATE_REACTION_NAME, metrics.DEPARTURE_REACTION_NAME)


@pytest.fixture
def sim_port() -> int:
    return prom.free_port()


@pytest.fixture
def server(tmp_path: Path, operator: OperatorProcess, sim_port: int) -> Iterator[prom.Prometheus]:
    targets = {
        "curbside-operator": f"127.0.0.1:{operator.metrics_port}",
        "curbside-sim": f"127.0.0.1:{sim_port}",
    }
    folder = tmp_path / "prometheus"
    folder.mkdir()
    p = prom.Prometheus(folder, targets, scrape_s=SCRAPE_S)
    p.start()
    yield p
    p.stop()


@pytest.fixture
def simulator(
    testbed: bed.TestBed, tmp_path: Path, triton: serve.ServerProcess, sim_port: int
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``curbside sim`` with real workers and its metrics on ``sim_port``; stopped with SIGTERM."""
    kubeconfig = testbed.kubeconfig_for("curbside-sim-observe", groups=("system:masters",))
    clock, log = tmp_path / "clock.json", tmp_path / "sim.log"
    argv = [sys.executable, "-m", "curbside_sim.runner", "--cars", str(CARS), "--seed", str(SEED)]
    argv += ["--start", START.isoformat(), "--speed", f"{SPEED:g}", "--battery-step", "5"]
    argv += [
        "--lease-seconds",
        str(LEASE_SECONDS),
        "--kubeconfig",
        str(kubeconfig),
        "--clock-file",
        str(clock),
    ]
    argv += ["--triton-url", triton.grpc_url, "--max-workers", "6", "--report-seconds", "10"]
    argv += ["--metrics-port", str(sim_port)]
    with log.open("wb") as out:
        sim = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait.until(lambda: clock.exists() or sim.poll() is not None, timeout=180, what="the fleet running")
        assert clock.exists(), log.read_text()[-3000:]
        yield sim, log
    finally:
        wait.terminate(sim)


def test_every_dashboard_panel_has_data_in_a_real_prometheus(
    api: httpx.Client,
    namespace: str,
    server: prom.Prometheus,
    simulator: tuple[subprocess.Popen[bytes], Path],
    cars: Cars,
    tmp_path: Path,
) -> None:
    sim, log = simulator
    since = time.time() - 30
    # The simulated cars' job stays in the test bed's regions: the scripted cars' slots stay free.
    # Two agreeing replicas per unit: validated results, so the owners earn credit.
    placement = {"maxCars": 12, "regions": list(fleet.REGIONS)}
    body = job_body(
        "observe",
        units=300,
        placement=placement,
        redundancy={"replicas": 2, "quorum": 2},
        unitTimeoutSeconds=30,
        maxAttempts=10,
    )
    body["spec"]["input"]["generated"].update(seed=SEED, parameters=SMALL)
    body["spec"]["output"]["uri"] = (tmp_path / "results").as_uri()
    r = api.post(jobs_path(namespace), json=body)
    assert r.status_code == 201, r.text

    # Two scripted cars, reporting in wall time, take a job of their own and drive off with it.
    # Their reactions are the only ones the operator times: Prometheus must hold a sample of both
    # histograms from before, or the increase is invisible to rate() (cars done before the first
    # scrape leave the counts already at their final values, and rate() sees no increase).
    wait.until(
        lambda: all(server.query(f"{name}_count")["result"] for name in REACTIONS),
        timeout=60,
        what="Prometheus holding the reaction histograms before the scripted cars act",
    )
    bring_up(api, cars, SCRIPTED)
    for car in SCRIPTED:
        cars.report(car, region=REGION, **CHARGING)
    leave = job_body("leave", units=10, placement={"regions": [REGION], "maxCars": len(SCRIPTED)})
    leave["spec"]["output"]["uri"] = (tmp_path / "leave").as_uri()
    r = api.post(jobs_path(namespace), json=leave)
    assert r.status_code == 201, r.text
    wait.until(
        lambda: {p["spec"]["nodeName"] for p in pods(api, namespace, "leave")} == set(SCRIPTED),
        timeout=90,
        what="a pod of job leave on each scripted car",
    )
    for car in SCRIPTED:
        cars.report(car, state="Driving", charging=False, network="Metered")
    wait.until(lambda: not pods(api, namespace, "leave"), timeout=30, what="the leavers' pods deleted")

    panels = prom.panels()
    assert len(panels) >= 40, len(panels)
    assert {p.dashboard for p in panels} == {"curbside-fleet", "curbside-jobs", "curbside-operator"}
    wanted = list(panels)
    left: list[prom.Panel] = list(wanted)

    def all_have_data() -> bool:
        assert sim.poll() is None, f"the simulator exited ({sim.returncode}):\n{log.read_text()[-3000:]}"
        left[:] = [p for p in left if not prom.has_data(server.panel(p, since=since, step_s=STEP_S))]
        return not left

    started = time.monotonic()
    try:
        wait.until(all_have_data, timeout=DATA_TIMEOUT, what="data for every panel", interval=5)
    except wait.WaitTimeout:
        lines = "\n  ".join(str(p) for p in left)
        pytest.fail(
            f"{len(left)} of {len(wanted)} panel queries found no data in {DATA_TIMEOUT:.0f}s:\n  {lines}"
        )
    took = time.monotonic() - started

    up = server.targets_up()
    assert up == {"curbside-operator": True, "curbside-sim": True}, up
    by_job = server.query('count by (job) ({__name__=~"curbside_(agent|worker)_.+"})')["result"]
    assert {s["metric"]["job"] for s in by_job} == {"curbside-sim"}

    # Every alert expression runs on the real engine (firing or not).
    groups = prom.rule_groups(h.render(h.CHART / "ci" / "monitoring-values.yaml"))
    for rule in (r for g in groups["groups"] for r in g["rules"]):
        server.query(rule["expr"])

    job = api.get(f"{jobs_path(namespace)}/observe").json()
    print(
        f"\n{len(wanted)} panel queries with data after {took:.0f}s; "
        f"job status {json.dumps(job.get('status', {}).get('units'))}; "
        f"{[line for line in log.read_text().splitlines() if line.startswith('[sim] 2')][-1:]}"
    )


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    """The chart's PrometheusRule groups, as the Prometheus Operator hands them to Prometheus."""
    for scenario in (h.CHART / "ci" / "monitoring-values.yaml", None):
        sets = None if scenario else {"metrics.prometheusRule.enabled": "true"}
        groups = prom.rule_groups(h.render(scenario, sets=sets))
        count = sum(len(g["rules"]) for g in groups["groups"])
        done = prom.check_rules(groups, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"SUCCESS: {count} rules found" in done.stdout, done.stdout
    broken = {"groups": [{"name": "x", "rules": [{"alert": "Broken", "expr": "sum(rate(x[5m])"}]}]}
    assert prom.check_rules(broken, tmp_path).returncode != 0  # promtool does judge
