"""What one job-loop round that places thousands of pods holds in memory at once.

Why this exists: the full bench's footprint scenario applies two jobs of 3,500 cars each at
10,000 cars, and what the operator holds during that round stays in its RSS (CPython rarely
hands freed memory back). The job loop starts every create of a round at once and lets
``write_concurrency`` of them talk to the API server; a create that built its pod body
*before* waiting for its turn would make a round of 7,000 creates hold 7,000 bodies (the
operator's RSS went from 180 to 237 MiB in that round's first seconds when it did), so each
create builds its body under the limit. This replays such a round with the real ``pod_body``,
a write limit of 32 and a request that only yields, building each body before the limit and
under it (as the job loop does), and prints ``tracemalloc``'s peak for each, in one process.

    .venv/bin/python bench/pod_create_memory.py [--pods 7000] [--limit 32]
"""

from __future__ import annotations

import argparse
import asyncio
import tracemalloc
from collections.abc import Callable
from typing import Any

from curbside_api.v1alpha1 import inferencejob as ij
from curbside_operator.reconcile import pods

JOB = ij.InferenceJob.from_body(
    {
        "apiVersion": "curbside.dev/v1alpha1",
        "kind": "InferenceJob",
        "metadata": {"name": "fill-a", "namespace": "bench-curbside", "uid": "u-1"},
        "spec": {
            "model": {"name": "seti-spike-search"},
            "input": {"generated": {"units": 7000}},
            "output": {"uri": "file:///results"},
        },
    }
)


def body(car: str) -> dict[str, Any]:
    return pods.pod_body(JOB, car, owner="alice", dispatcher_url="http://127.0.0.1:8470", worker_image="w:1")


async def _request(sent: dict[str, Any]) -> None:
    await asyncio.sleep(0)  # the API server's answer: other creates run meanwhile
    await asyncio.sleep(0)


async def _round(count: int, limit: int, *, build_first: bool) -> None:
    writes = asyncio.Semaphore(limit)

    async def create(car: str) -> None:
        if build_first:
            made = body(car)
            async with writes:
                await _request(made)
        else:
            async with writes:
                await _request(body(car))

    await asyncio.gather(*(create(f"car-{i:05d}") for i in range(count)))


def peak_mib(run: Callable[[], None]) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=7000)
    p.add_argument("--limit", type=int, default=32, help="the operator's write_concurrency")
    args = p.parse_args()
    one = peak_mib(lambda: [body(f"car-{i:05d}") for i in range(100)]) / 100
    before = peak_mib(lambda: asyncio.run(_round(args.pods, args.limit, build_first=True)))
    now = peak_mib(lambda: asyncio.run(_round(args.pods, args.limit, build_first=False)))
    print(f"one pod body: {one * 1024:.1f} KiB")
    print(f"a round of {args.pods:,} creates, {args.limit} at a time: peak traced memory")
    print(f"  body built before the write limit (before): {before:7.1f} MiB")
    print(f"  body built under the write limit (now):     {now:7.1f} MiB")


if __name__ == "__main__":
    main()
