"""Scenario 5: a long job under 10 %/h departures, on an accelerated clock.

Why this exists: Curbside promises (docs/design.md, Numbers) no unit lost, at most 5 % re-run
and at least 90 % of the eligible car-time used while a backlog waits. Workers are played over
the dispatcher's HTTP API with the tokens the operator put into their pods (lease, "compute"
for the unit's time, commit, each worker proving its pod with the pod-bound token a kubelet
would project, asked of the TokenRequest API): the real protocol, without Triton (scenario 6
measures inference itself). Cars leave at random (a Poisson process of ``rate_per_hour`` per
car, times ``speed``) the way the agent does it: the worker stops at once, mid-unit, then the
car reports Driving; it parks again later. Exactly-once is checked as we go: a unit committed
twice, or a unit never committed when the job ends, fails the scenario loudly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from curbside_bench import curbside, kit, stats
from curbside_bench.results import Row, Scenario


def output_hash(value: Any) -> str:
    """The dispatcher's wire contract for ``outputHash``: SHA-256 of the canonical JSON."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class Tally:
    leases: int = 0
    fenced: int = 0
    committed: dict[int, int] = field(default_factory=dict)  # unit → attempt
    busy: list[tuple[float, float]] = field(default_factory=list)
    last_lease: float = 0.0
    departures: int = 0
    away: list[tuple[float, float]] = field(default_factory=list)  # a car's Driving report → its return
    abandoned: int = 0
    empty: int = 0  # lease answered 204: nothing to lease right now
    refused: dict[int, int] = field(default_factory=dict)  # other lease answers: status → count
    transport_errors: int = 0  # requests retried: the connection failed before an answer
    token_refreshes: int = 0  # new tokens after a 401 (the old one expired)
    # Per worker, its first steps (epoch s): start, token, answer (and its status), lease.
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def spans(self, since: str, until: str) -> list[float]:
        """Each worker's time from its step ``since`` to its step ``until`` (both taken)."""
        return [w[until] - w[since] for w in self.timeline if since in w and until in w]


async def _post(
    http: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    tally: Tally,
    headers: dict[str, str],
) -> httpx.Response:
    """POST until the dispatcher answers, as the real worker does (a replayed commit gets the
    same answer; a lease whose answer was lost times out and is re-leased, a counted re-run)."""
    while True:
        try:
            return await http.post(url, json=body, headers=headers)
        except httpx.TransportError:
            tally.transport_errors += 1
            await asyncio.sleep(0.5)


def _env(pod: dict[str, Any]) -> dict[str, str]:
    worker = next(c for c in pod["spec"]["containers"] if c["name"] == "worker")
    return {e["name"]: e.get("value", "") for e in worker.get("env", [])}


def pod_token(api: httpx.Client, pod: dict[str, Any]) -> str:
    """The token the kubelet would project into ``pod`` (its ``serviceAccountToken`` volume
    source: audience, lifetime), bound to the pod, from the TokenRequest API."""
    meta, spec = pod["metadata"], pod["spec"]
    sources = [s for v in spec.get("volumes", []) for s in (v.get("projected") or {}).get("sources", [])]
    want = next(s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s)
    account = spec.get("serviceAccountName") or "default"
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [want["audience"]],
            "expirationSeconds": want.get("expirationSeconds", 3600),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        },
    }
    path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token"
    for wait in (1.0, 2.0, 4.0, 0.0):  # a kubelet retries too: a busy API server may refuse
        try:
            r = api.post(path, json=body)
        except httpx.TransportError:
            if not wait:
                raise
        else:
            if r.status_code not in (429, 500, 503, 504) or not wait:
                break
        time.sleep(wait)
    if r.status_code != 201:
        raise kit.BenchError(f"token for pod {meta['name']}: HTTP {r.status_code}: {r.text[:200]}")
    return str(r.json()["status"]["token"])


TOKENS = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="bench-token")


async def _worker(
    api: httpx.Client, http: httpx.AsyncClient, pod: dict[str, Any], unit_s: float, tally: Tally
) -> None:
    env = _env(pod)
    car = env["CURBSIDE_CAR"]
    base = (
        f"{env['CURBSIDE_DISPATCHER_URL']}/v1/jobs/{env['CURBSIDE_JOB_NAMESPACE']}/{env['CURBSIDE_JOB_NAME']}"
    )
    steps: dict[str, Any] = {"car": car, "start": time.time()}
    tally.timeline.append(steps)
    # Valid 10 min; a worker lives far less. Kubelets project tokens on every car at once, so
    # the workers ask on a pool of their own, not asyncio's default (6 threads here).
    token = await asyncio.get_running_loop().run_in_executor(TOKENS, pod_token, api, pod)
    steps["token"] = time.time()
    headers = {"Authorization": f"Bearer {token}"}

    async def fresh() -> dict[str, str]:
        """A new token after a 401, as the real worker reads the one its kubelet rotated: a
        job slower than the token's 10 minutes once got 24,436 refusals at 10,000 cars."""
        try:
            token = await asyncio.get_running_loop().run_in_executor(TOKENS, pod_token, api, pod)
        except kit.BenchError:  # the pod is gone: the bench stops this worker at its next look
            return headers
        tally.token_refreshes += 1
        return {"Authorization": f"Bearer {token}"}

    while True:
        r = await _post(http, f"{base}/lease", {"car": car, "owner": env["CURBSIDE_OWNER"]}, tally, headers)
        if "answer" not in steps:
            steps["answer"], steps["status"] = time.time(), r.status_code
        if r.status_code != 200:
            if r.status_code == 204:
                tally.empty += 1
            else:
                tally.refused[r.status_code] = tally.refused.get(r.status_code, 0) + 1
            if r.status_code == 401:
                headers = await fresh()
            await asyncio.sleep(0.5)
            continue
        lease, began = r.json(), time.time()
        steps.setdefault("lease", began)
        tally.leases += 1
        tally.last_lease = began
        try:
            await asyncio.sleep(unit_s)
        except asyncio.CancelledError:
            tally.busy.append((began, time.time()))
            tally.abandoned += 1
            raise
        result = {"unit": lease["unit"]}  # every car computes the same answer
        body = {
            "car": car,
            "attempt": lease["attempt"],
            "outputHash": output_hash(result),
            "result": result,
        }
        done = await _post(http, f"{base}/units/{lease['unit']}/complete", body, tally, headers)
        while done.status_code == 401:  # a replayed commit gets the same answer
            headers = await fresh()
            await asyncio.sleep(0.5)
            done = await _post(http, f"{base}/units/{lease['unit']}/complete", body, tally, headers)
        tally.busy.append((began, time.time()))
        answer = done.json()
        if done.status_code == 409:
            tally.fenced += 1
        elif done.status_code == 200 and answer.get("committed") and not answer.get("duplicate"):
            if lease["unit"] in tally.committed:
                first = tally.committed[lease["unit"]]
                raise kit.BenchError(
                    f"unit {lease['unit']} committed twice (attempts {first} and {lease['attempt']})"
                )
            tally.committed[lease["unit"]] = lease["attempt"]


async def _run(
    ctx: kit.Ctx,
    *,
    job: str,
    cars: int,
    units: int,
    unit_s: float,
    rate: float,
    park_s: float,
    timeout: float,
    applied: float,
) -> dict[str, Any]:
    rng = random.Random(ctx.seed + 5)
    tally = Tally()
    workers: dict[str, asyncio.Task[None]] = {}
    away: dict[str, tuple[float, float]] = {}  # car → (when it reported Driving, when it parks again)
    # creationTimestamp has whole seconds: up to 1 s early, which would count as idle car-time.
    # The moment just before the POST is also a lower bound, on the same machine's clock.
    stamped = stats.parse_time(curbside.get(ctx.api, job)["metadata"]["creationTimestamp"])
    created = max(stamped, applied)
    deadline, last_tick, status, succeeded = time.monotonic() + timeout, time.monotonic(), {}, False
    # One client for every worker: building an httpx client (its TLS context) costs about 0.1 s
    # of this process's CPU, so 500 workers each with their own held up every first lease by
    # about a minute, the ramp this scenario then counted against the dispatcher.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=cars * 2)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now_m, now = time.monotonic(), time.time()
            dt, last_tick = now_m - last_tick, now_m
            live = await asyncio.to_thread(
                kit.live_pods, ctx.api, curbside.NAMESPACE, f"curbside.dev/job={job}"
            )
            on = {p["spec"]["nodeName"]: p for p in live}
            for car, task in list(workers.items()):
                if car not in on or task.done():
                    if task.done() and not task.cancelled() and (err := task.exception()):
                        raise err
                    task.cancel()
                    del workers[car]
            for car, pod in on.items():
                if car not in workers and car not in away:
                    workers[car] = asyncio.create_task(_worker(ctx.api, http, pod, unit_s, tally))
            for car in list(workers):  # departures: the agent stops the work first, then reports
                if rng.random() < rate * dt:
                    workers.pop(car).cancel()
                    tally.departures += 1
                    await asyncio.to_thread(kit.report, ctx.api, car, kit.DRIVING)
                    away[car] = (time.time(), now + park_s)
            for car, (left, back) in list(away.items()):
                if now >= back:
                    del away[car]
                    await asyncio.to_thread(kit.report, ctx.api, car, kit.CHARGING)
                    tally.away.append((left, time.time()))
            status = (await asyncio.to_thread(curbside.get, ctx.api, job)).get("status", {})
            if succeeded := any(
                c.get("type") == "Succeeded" and c.get("status") == "True"
                for c in status.get("conditions", [])
            ):
                break
        for task in workers.values():
            task.cancel()
        await asyncio.gather(*workers.values(), return_exceptions=True)
    for car, (left, _) in away.items():
        kit.report(ctx.api, car, kit.CHARGING)
        tally.away.append((left, time.time()))
    # The ledger is the authority on what was committed (a worker stopped mid-request may not
    # have seen its answer); the workers' own tally catches a unit committed twice.
    lost = units - int((status.get("units") or {}).get("succeeded", 0))
    if lost or not succeeded:
        raise kit.BenchError(f"churn: {lost} of {units} units not committed (job status: {status})")
    end = tally.last_lease
    first_leases = [w["lease"] for w in tally.timeline if "lease" in w]
    busy, gone = _within(tally.busy, created, end), _within(tally.away, created, end)
    return {
        "cars": cars,
        "units": units,
        "unit_s": unit_s,
        "departure_rate_per_car_s": rate,
        "park_s": park_s,
        "leases": tally.leases,
        "departures": tally.departures,
        "abandoned_attempts": tally.abandoned,
        "empty_leases": tally.empty,
        "refused_leases": {str(k): v for k, v in sorted(tally.refused.items())},
        "worker_start_to_first_lease_s": stats.summary(tally.spans("start", "lease")),
        "worker_start_to_token_s": stats.summary(tally.spans("start", "token")),
        "token_to_first_answer_s": stats.summary(tally.spans("token", "answer")),
        # The ramp: job created → the first worker leasing, and → ``cars`` workers leasing.
        "ramp_s": [(t - created) if (t := _nth(first_leases, n)) is not None else None for n in (1, cars)],
        # The first steps of the first workers, seconds after the job's creation: where the ramp goes.
        "worker_timeline": [_relative(w, created) for w in sorted(tally.timeline, key=_start)[:cars]],
        "fenced_commits": tally.fenced,
        "transport_errors": tally.transport_errors,
        "token_refreshes": tally.token_refreshes,
        "units_lost": lost,
        "commits_seen_by_workers": len(tally.committed),
        "rerun_fraction": (tally.leases - units) / units,
        "backlog_s": end - created,
        # Time cars spent away driving (Driving report → Charging again), for the record: it is
        # not taken off the denominator, since the job's other eligible cars refill a departed
        # car's place (taking it off gave 1.01 in a quick run).
        "car_time_away_s": gone,
        "car_time_used": used_share(busy, cars, end - created),
        "succeeded": succeeded,
    }


def used_share(busy_s: float, places: int, backlog_s: float) -> float:
    """The share of the job's car-time used while its backlog waited: busy seconds over its
    ``places`` (maxCars, every one of them fillable: the fleet has spare eligible cars) times
    the backlog. A departed car's place is refilled by another car, so the wait for that
    replacement counts as unused, Curbside's own cost."""
    return stats.share_of(busy_s, places * backlog_s)


def _start(steps: dict[str, Any]) -> float:
    return float(steps["start"])


def _relative(steps: dict[str, Any], origin: float) -> dict[str, Any]:
    """A worker's first steps with their moments in seconds after ``origin``."""
    return {
        k: round(v - origin, 3) if k in ("start", "token", "answer", "lease") else v for k, v in steps.items()
    }


def _within(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of ``spans`` that fall between ``start`` and ``end``."""
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)


def _nth(times: list[float], n: int) -> float | None:
    ordered = sorted(times)
    return ordered[n - 1] if len(ordered) >= n else None


def run(ctx: kit.Ctx, *, cars: int, minutes: float, speed: float, rate_per_hour: float = 0.10) -> Scenario:
    """A job sized to keep ``cars`` cars busy about ``minutes`` of wall time, ``speed``× accelerated."""
    unit_s = 300.0 / speed  # a five-minute unit
    park_s = 1200.0 / speed  # a car that left parks again twenty minutes later
    units = max(cars, round(cars * minutes * 60 / unit_s))
    rate = rate_per_hour / 3600 * speed
    body = curbside.job_body(
        "churn", units=units, max_cars=cars, output=ctx.work / "results", unit_timeout=int(unit_s * 4) + 30
    )
    # One attempt per unit unless a departure interrupts it: no replicas, no probes of cars'
    # honesty (docs/trust.md), so every extra attempt counted here is one that churn caused.
    body["spec"]["redundancy"] = {"replicas": 1, "quorum": 1, "probePercent": 0}
    applied = time.time()
    curbside.apply(ctx.api, body)
    f = asyncio.run(
        _run(
            ctx,
            job="churn",
            cars=cars,
            units=units,
            unit_s=unit_s,
            rate=rate,
            park_s=park_s,
            timeout=minutes * 60 * 4 + 120,
            applied=applied,
        )
    )
    f["speed"] = speed
    curbside.delete(ctx.api, "churn", 300)
    rows = [
        Row(
            "5 Churn",
            f"units lost ({units:,} units, {cars} cars, 10 %/h departures ×{speed:g})",
            "units",
            float(f["units_lost"]),
            note=f"{f['departures']} departures",
        ),
        Row("5 Churn", "re-run fraction (extra attempts / units)", "share", f["rerun_fraction"]),
        Row(
            "5 Churn",
            "eligible car-time used while a backlog waited",
            "share",
            f["car_time_used"],
            note=f"busy / ({cars} places × backlog time); eligible spare cars refill departed ones",
        ),
    ]
    return Scenario("churn", f, rows)
