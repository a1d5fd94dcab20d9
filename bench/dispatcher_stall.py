"""How long a small request waits while the dispatcher takes in a large result.

Why this exists: a result of several MiB must be parsed, checked and hashed before the
ledger sees it. Done on the event loop, that work stalls every other request of every car for
as long as it takes (a review measured 2.7 s for 10 MiB). ``server.Dispatcher`` now does it on
its parsing pool. This runs a real dispatcher on loopback (the ledger a SQLite file, results
in a folder), leases ``--commits`` units and commits each with a result of ``--mib`` MiB,
while a client in another thread sends ``GET /healthz`` every 5 ms; it prints that request's latency
(p50, max) while commits are in flight, with the heavy work on the event loop (``before``:
``Dispatcher.inline_parsing``, how it used to be) and off it (``after``).

    .venv/bin/python bench/dispatcher_stall.py [--mib 10] [--commits 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from curbside_api.v1alpha1 import inferencejob
from curbside_operator.dispatch import auth, results
from curbside_operator.dispatch.server import Dispatcher
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from curbside_operator.reconcile.placement import pod_name

CAR = "car-1"


def job_spec(units: int) -> inferencejob.InferenceJobSpec:
    return inferencejob.InferenceJobSpec.model_validate(
        {
            "model": {"name": "bench"},
            "input": {"generated": {"seed": 1, "units": units, "itemsPerUnit": 1}},
            "output": {"uri": "file:///unused"},
            "unitTimeoutSeconds": 600,
        }
    )


def big_result(unit: int, mib: float) -> dict[str, object]:
    """A result shaped like a model's output: many small records (parsing cost, not just bytes)."""
    records = int(mib * 1024 * 1024 / 48)
    return {"unit": unit, "scores": [{"id": i, "score": i * 0.001, "label": "x"} for i in range(records)]}


async def measure(folder: Path, *, inline: bool, mib: float, commits: int) -> tuple[list[float], float]:
    ledger = SqliteLedger(folder / f"ledger-{inline}.db", durable=False)
    store = results.FolderResultStore(folder / f"results-{inline}", fsync=False)
    tokens = auth.StaticAuthenticator()
    dispatcher = Dispatcher(
        ledger,
        authenticator=tokens,
        pod_name=pod_name,
        stores=lambda uri: store,
        clock=lambda: datetime.now(UTC),
    )
    dispatcher.inline_parsing = inline
    dispatcher.register_job("bench", "job", "uid", job_spec(commits))
    token = tokens.issue(auth.Identity("bench", "default", pod_name("job", CAR), "uid-1", CAR))
    headers = {"Authorization": f"Bearer {token}"}
    runner = web.AppRunner(dispatcher.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    results_ = [big_result(unit, mib) for unit in range(commits)]
    hashes = [results.output_hash(result) for result in results_]  # the client's work, done before
    bodies = [  # serialized before the clock starts: the client shares this process's event loop
        json.dumps({"car": CAR, "attempt": 1, "outputHash": digest, "result": result}).encode()
        for result, digest in zip(results_, hashes, strict=True)
    ]
    latencies: list[float] = []
    busy = threading.Event()

    def probe() -> None:  # its own thread: a stall of the dispatcher's loop must not stall it
        busy.wait(60)
        while busy.is_set():
            began = time.perf_counter()
            with urllib.request.urlopen(f"{base}/healthz", timeout=60) as response:
                assert response.status == 200
            latencies.append(time.perf_counter() - began)
            time.sleep(0.005)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        async with aiohttp.ClientSession() as large:

            async def commit() -> float:
                began = time.perf_counter()
                busy.set()
                for unit, data in enumerate(bodies):
                    async with large.post(
                        f"{base}/v1/jobs/bench/job/lease", json={"car": CAR, "owner": "o"}, headers=headers
                    ) as response:
                        assert (await response.json())["unit"] == unit
                    async with large.post(
                        f"{base}/v1/jobs/bench/job/units/{unit}/complete", data=data, headers=headers
                    ) as response:
                        assert response.status == 200, await response.text()
                busy.clear()
                return time.perf_counter() - began

            took = await commit()
            await asyncio.to_thread(prober.join, 60)
    finally:
        await runner.cleanup()
        dispatcher.close()
        ledger.close()
    return latencies, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=float, default=10.0, help="size of each result")
    parser.add_argument("--commits", type=int, default=3, help="large results committed, one after another")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for label, inline in (("before (on the event loop)", True), ("after (parsing pool)", False)):
            latencies, took = asyncio.run(
                measure(Path(tmp), inline=inline, mib=args.mib, commits=args.commits)
            )
            ms = [x * 1000 for x in latencies]
            print(
                f"{label:28} {args.commits} commits of {args.mib:g} MiB in {took:5.2f} s;"
                f" /healthz during them: n={len(ms)} p50={statistics.median(ms):7.1f} ms"
                f" max={max(ms):7.1f} ms"
            )


if __name__ == "__main__":
    main()
