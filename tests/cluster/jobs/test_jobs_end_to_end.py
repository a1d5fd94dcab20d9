"""The operator's job side end to end: real Triton, real workers, cars that leave, an operator that dies.

200 cars (scripted agents) run a 2,000-unit ``seti-spike-search`` job. The simulator's worker
pool (``curbside_sim.workers``) plays their kubelets: it runs the real worker for every
pod the operator binds to them, against one real Triton server, with the pod-bound token the
pod asks for (``sim.tokens``, TokenRequest), which the operator's dispatcher checks with a
TokenReview on every new token. While the job runs:

- 30 % of the cars seen busy drive away mid-unit: their worker is killed holding its unit (no
  release, no commit), then the car reports ``Driving``; a few seconds later it is back.
- The operator is SIGKILLed 5 times at random moments and restarted.
- Every pass of the loop checks that no (job, car) ever has two live pods.

At the end the job is ``Succeeded``, the ledger is consistent with every unit committed exactly
once, the result store holds exactly one result per unit, and every injected signal was found.
"""

from __future__ import annotations

import collections
import os
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from curbside_operator.dispatch.results import FolderResultStore
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from curbside_sim import tokens, workers
from curbside_testbed import serve
from curbside_testbed.operator import OperatorProcess
from tests.support.figures import Figure
from tests.support.fleet import CHARGING, Cars, bring_up
from tests.support.jobs import condition, job_body, jobs_path, missed_signals

CARS = int(os.environ.get("CURBSIDE_TEST_JOB_CARS", "200"))
UNITS = int(os.environ.get("CURBSIDE_TEST_JOB_UNITS", "2000"))
DEPART_SHARE = 0.3
OPERATOR_KILLS = 5
RETURN_AFTER = 4.0
GRACE_SECONDS = 20.0
RENEW_SECONDS = 5.0  # 200 scripted cars: one Lease write each per 5 s
OPERATOR_ENV = {"CURBSIDE_EXPECTED_UNIT_SECONDS": "5", "CURBSIDE_STATUS_INTERVAL_SECONDS": "1"}
SMALL = {"channels": "512", "timeSteps": "64", "maxDrift": "8", "signalsPerUnit": "2"}
SEED = 7


def _pods(api: httpx.Client, namespace: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": workers.SELECTOR})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _live_pairs(items: list[dict[str, Any]]) -> collections.Counter[tuple[str, str]]:
    return collections.Counter(
        (p["metadata"]["labels"]["curbside.dev/job"], p["spec"]["nodeName"])
        for p in items
        if not p["metadata"].get("deletionTimestamp")
    )


def test_every_unit_commits_exactly_once_through_departures_and_operator_crashes(
    api: httpx.Client,
    namespace: str,
    operator: OperatorProcess,
    cars: Cars,
    triton: serve.ServerProcess,
    figure: Figure,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    names = [f"car-{i:05d}" for i in range(200, 200 + CARS)]
    bring_up(api, cars, names)
    results = tmp_path / "results"
    body = job_body("seti", units=UNITS, placement={"maxCars": 24}, unitTimeoutSeconds=60, maxAttempts=10)
    body["spec"]["input"]["generated"].update(seed=SEED, parameters=SMALL)
    body["spec"]["output"]["uri"] = results.as_uri()
    r = api.post(jobs_path(namespace), json=body)
    assert r.status_code == 201, r.text

    driving: dict[str, float] = {}
    pool = workers.WorkerPool(
        cars=set(names),
        blocked=lambda car: "Driving" if car in driving else None,
        triton_url=triton.grpc_url,
        max_workers=8,
        say=lambda line: None,
        pod_tokens=tokens.PodTokens(tokens.request_over(api), tmp_path / "tokens"),
    )
    decided: set[str] = set()
    departed: list[str] = []
    announced: dict[str, float] = {}
    reaction: list[float] = []
    doubles: list[tuple[float, dict[tuple[str, str], int]]] = []
    kills_at = sorted(rng.sample(range(5, 85), OPERATOR_KILLS))
    restarts: list[threading.Thread] = []
    started, deadline, done = time.monotonic(), time.monotonic() + 900, threading.Event()
    status: dict[str, Any] = {}
    try:
        while not done.wait(0.2):
            assert time.monotonic() < deadline, f"job not done in time: {status}"
            items = _pods(api, namespace)
            twice = {k: n for k, n in _live_pairs(items).items() if n > 1}
            if twice:
                doubles.append((time.monotonic() - started, twice))
            pool.sync(items)
            pool.check()
            now = time.monotonic()
            on_car = {p["spec"]["nodeName"] for p in items if not p["metadata"].get("deletionTimestamp")}
            operator_up = not any(t.is_alive() for t in restarts)
            for car, at in list(announced.items()):
                if car not in on_car:
                    reaction.append(now - at)
                    del announced[car]
                elif not operator_up:
                    del announced[car]  # announced to an operator that is down: not a reaction time
            # Busy cars leave mid-unit: the worker dies holding its unit, then the car says so.
            for run in list(pool.running.values()):
                car = run.config.car
                if run.held and car not in decided:
                    decided.add(car)
                    if rng.random() < DEPART_SHARE:
                        driving[car] = now
                        pool.check()  # killed holding its unit, before anything is reported
                        cars.report(car, state="Driving", charging=False, network="Metered")
                        if operator_up:
                            announced[car] = time.monotonic()
                        departed.append(car)
            for car, at in list(driving.items()):
                if now - at > RETURN_AFTER:
                    cars.report(car, **CHARGING)
                    del driving[car]
            job = api.get(f"{jobs_path(namespace)}/seti").json()
            status = job.get("status", {})
            succeeded = status.get("units", {}).get("succeeded", 0)
            if (
                kills_at
                and succeeded >= kills_at[0] * UNITS / 100
                and not any(t.is_alive() for t in restarts)
            ):
                kills_at.pop(0)
                restart = threading.Thread(
                    target=lambda: (operator.kill(), operator.start(wait=60)), daemon=True
                )
                restart.start()
                restarts.append(restart)
            if (
                condition(job, "Succeeded").get("status") == "True"
                or condition(job, "Failed").get("status") == "True"
            ):
                done.set()
    finally:
        pool.close()
        for restart in restarts:
            restart.join(timeout=120)
    wall = time.monotonic() - started
    assert condition(job, "Succeeded").get("status") == "True", status
    assert doubles == [], f"two live pods for one (job, car): {doubles[:3]}"
    assert kills_at == [], f"operator kills not done: {kills_at}"
    busy_seen = len(decided)
    assert len(departed) >= max(1, int(busy_seen * DEPART_SHARE * 0.5)), (len(departed), busy_seen)

    # The ledger, read with the operator stopped (one writer): consistent, one commit per unit.
    operator.stop()
    try:
        ledger = SqliteLedger(Path(operator.env["CURBSIDE_LEDGER_PATH"]), durable=False)
        key = next(k for k in ledger.jobs() if k.startswith(f"{namespace}/seti/"))
        assert ledger.verify() == []
        committed = ledger.results(key)
        summary = ledger.summary(key)
        ledger.close()
    finally:
        operator.start(wait=60)
    assert sorted(c.unit for c in committed) == list(range(UNITS))
    assert (summary.succeeded, summary.failed) == (UNITS, 0)
    store = FolderResultStore(results)
    files = sorted(store.folder(namespace, "seti").glob("*.json"))
    assert len(files) == UNITS

    # Outputs correct: every injected signal found, in every unit.
    assert missed_signals(store, namespace, "seti", units=UNITS, seed=SEED, parameters=SMALL) == 0

    p50 = statistics.median(reaction) if reaction else float("nan")
    p99 = sorted(reaction)[int(0.99 * (len(reaction) - 1))] if reaction else float("nan")
    figure(
        "throughput",
        f"{UNITS} units on {CARS} cars in {wall:.0f}s ({UNITS / wall:.1f} units/s)",
    )
    figure(
        "Driving reported (operator up) -> pod gone",
        f"n={len(reaction)} p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms (0.2 s polling)",
    )
    print(
        f"\n{UNITS} units on {CARS} cars in {wall:.0f}s ({UNITS / wall:.1f} units/s); busy cars {busy_seen}, "
        f"departed mid-unit {len(departed)}, departures handled {status.get('departuresHandled')}, "
        f"re-runs {summary.reruns} ({summary.reruns / UNITS:.1%}), operator SIGKILLs {OPERATOR_KILLS}; "
        f"Driving reported (operator up) -> pod gone n={len(reaction)} "
        f"p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms "
        f"(0.2 s polling); pool: {pool.summary()}"
    )
