"""How fast the work-unit ledger leases and commits: operations per second and lease latency.

Why this exists: the dispatcher sits on the path of every unit a car runs, and Curbside is
built for 10,000 cars. This drives ``SqliteLedger`` the way the dispatcher does, on a SQLite
file on disk (not tmpfs): every unit is leased by one of ``--cars`` cars and committed, one
transaction each. It prints, for both durability settings (``durable=True``: an fsync per
transaction; ``False``: WAL without fsync, which a SIGKILL cannot hurt but a power cut can),
the lease+complete pairs per second (wall clock, and per CPU-second: what one free core
delivers on a shared machine) and the p50/p99 latency of a lease. ``--http`` adds the
same through the dispatcher's HTTP API with concurrent workers.

    .venv/bin/python bench/ledger.py --units 10000 --cars 1000 [--http]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from curbside_api.v1alpha1 import inferencejob
from curbside_operator.dispatch import auth, results
from curbside_operator.dispatch.server import Dispatcher
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from curbside_operator.reconcile.placement import pod_name

T0 = datetime(2025, 3, 3, tzinfo=UTC)
JOB = "bench/job/1"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def direct(folder: Path, *, units: int, cars: int, durable: bool) -> None:
    ledger = SqliteLedger(folder / f"direct-{durable}.db", durable=durable)
    ledger.add_job(JOB, units=units, unit_timeout=timedelta(minutes=10), max_attempts=3)
    lease_s: list[float] = []
    began, cpu = time.perf_counter(), time.process_time()
    for i in range(units):
        car = f"car-{i % cars}"
        now = T0 + timedelta(milliseconds=i)
        t = time.perf_counter()
        lease = ledger.lease(JOB, car=car, owner=f"owner-{i % cars // 3}", now=now)
        lease_s.append(time.perf_counter() - t)
        assert lease is not None
        ledger.complete(
            JOB, lease.unit, lease.attempt, car=car, output_hash=f"{i:064x}", result_ref="r", now=now
        )
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    t = time.perf_counter()
    summary = ledger.summary(JOB)
    summary_ms = (time.perf_counter() - t) * 1000
    assert summary.succeeded == units
    assert ledger.verify() == []
    ledger.close()
    print(
        f"direct  durable={durable!s:5}  {units / elapsed:6.0f} lease+complete/s ({units / cpu:5.0f}/CPU-s)  "
        f"lease p50 {percentile(lease_s, 0.5) * 1e6:6.0f} us  p99 {percentile(lease_s, 0.99) * 1e6:6.0f} us  "
        f"summary {summary_ms:5.1f} ms"
    )


async def over_http(folder: Path, *, units: int, cars: int, workers: int) -> None:
    from aiohttp import ClientSession, web

    ledger = SqliteLedger(folder / "http.db", durable=True)
    store = results.FolderResultStore(folder / "results")
    tokens = auth.StaticAuthenticator()  # in-process tokens: this measures the ledger, not TokenReview
    dispatcher = Dispatcher(ledger, authenticator=tokens, pod_name=pod_name, stores=lambda uri: store)
    spec = inferencejob.InferenceJobSpec.model_validate(
        {"model": {"name": "m"}, "input": {"generated": {"units": units}}, "output": {"uri": "file:///x"}}
    )
    key = dispatcher.register_job("bench", "job", "1", spec)
    runner = web.AppRunner(dispatcher.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    lease_s: list[float] = []

    async def worker(session: ClientSession, first: int) -> None:
        for n in range(first, cars, workers):
            car = f"car-{n}"
            identity = auth.Identity("bench", "default", pod_name("job", car), f"uid-{n}", car)
            headers = {"Authorization": f"Bearer {tokens.issue(identity)}"}
            base = f"http://127.0.0.1:{port}/v1/jobs/bench/job"
            while True:
                t = time.perf_counter()
                async with session.post(
                    f"{base}/lease", json={"car": car, "owner": car}, headers=headers
                ) as r:
                    lease_s.append(time.perf_counter() - t)
                    if r.status == 204:
                        break
                    lease = await r.json()
                result = {"unit": lease["unit"]}
                body = {"car": car, "attempt": lease["attempt"], "outputHash": results.output_hash(result)}
                url = f"{base}/units/{lease['unit']}/complete"
                async with session.post(url, json={**body, "result": result}, headers=headers) as r:
                    assert r.status == 200, await r.text()

    began, cpu = time.perf_counter(), time.process_time()
    async with ClientSession() as session:
        await asyncio.gather(*(worker(session, w) for w in range(workers)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    await runner.cleanup()
    dispatcher.close()
    assert ledger.summary(key).succeeded == units
    ledger.close()
    print(
        f"http    durable=True   {units / elapsed:6.0f} lease+complete/s ({units / cpu:5.0f}/CPU-s)  "
        f"lease p50 {statistics.median(lease_s) * 1e3:6.2f} ms  "
        f"p99 {percentile(lease_s, 0.99) * 1e3:6.2f} ms  "
        f"({workers} workers in this process, results written to disk)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--cars", type=int, default=1_000)
    parser.add_argument("--http", action="store_true", help="also through the HTTP API")
    parser.add_argument("--workers", type=int, default=32, help="concurrent HTTP workers")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the SQLite files go (default: a temp dir)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="curbside-bench-") as folder:
        print(f"{args.units} units, {args.cars} cars, SQLite {Path(folder)}")
        for durable in (True, False):
            direct(Path(folder), units=args.units, cars=args.cars, durable=durable)
        if args.http:
            asyncio.run(over_http(Path(folder), units=args.units, cars=args.cars, workers=args.workers))


if __name__ == "__main__":
    main()
