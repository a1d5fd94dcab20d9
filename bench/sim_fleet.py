"""How many simulated cars one simulator process carries: speed-up, API writes, CPU and memory.

Why this exists: one simulator process must carry 10,000 simulated cars on a 2-core machine;
this measures its speed-up, API writes per second and agent CPU and memory per 1,000 cars
(docs/agent.md shows the figures). It runs the simulator's own driver (``curbside_sim.driver``)
with the real agents (policy, interlock, status, departure prediction, Lease timing) in one of
two modes:

- ``--null`` (default without ``--kubeconfig``): every agent reports to an in-process counter
  instead of the API server, so the figures are the agents' and the mobility model's own cost,
  whatever the API server could take. Speed 0 (as fast as possible) gives the speed-up the
  simulator achieves on this machine.
- ``--kubeconfig PATH``: the agents write to that API server as ``curbside sim`` does
  (enrollment first, then Lease renewals and status patches); add ``--speed`` for a fixed
  speed-up (0 runs as fast as the API server allows).

    .venv/bin/python bench/sim_fleet.py --cars 10000 --days 1
    .venv/bin/python bench/sim_fleet.py --cars 1000 --hours 2 --speed 600 \\
        --kubeconfig ~/.cache/curbside/beds/sim/kubeconfig

It prints one line of figures to paste into a report. On a shared machine the wall-clock
figures depend on the load (the line says the load average); CPU seconds are what the
simulator itself spent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from curbside_agent import agent, interlock, kube, policy
from curbside_agent.signals import sources
from curbside_api.v1alpha1 import vehiclenode
from curbside_sim import driver, enroll, mobility, runner

START = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)  # a Monday morning


class Counting:
    """A reporter that only counts (``--null``)."""

    renewals = 0
    patches = 0

    async def renew_lease(self) -> None:
        Counting.renewals += 1

    async def patch_status(self, patch: dict[str, Any]) -> None:
        Counting.patches += 1


def null_cars(cars: int, *, seed: int, clock: driver.SimClock, lease: float) -> list[driver.Car]:
    built: list[driver.Car] = []
    for index in range(cars):
        body = enroll.vehiclenode_body(seed, index, node=enroll.NodeFacts(), zone="UTC")
        source = sources.MemorySource()
        car = agent.Agent(
            signals=source,
            reporter=Counting(),
            owner_policy=policy.from_spec(vehiclenode.VehicleNode.from_body(body).spec.policy),
            guard=interlock.Interlock(clock=time.monotonic),
            now=clock.now,
            monotonic=time.monotonic,
            lease_renew_seconds=lease,
        )
        built.append(driver.Car(index=index, agent=car, source=source))
    return built


async def measure(args: argparse.Namespace) -> dict[str, float]:
    clock = driver.SimClock(start=START, speed=args.speed)
    apis: list[kube.Api] = []
    base = runner.usage()
    began = time.monotonic()
    if args.kubeconfig is None:
        cars = null_cars(args.cars, seed=args.seed, clock=clock, lease=args.lease_seconds)
    else:
        creds = kube.Credentials.load(args.kubeconfig)
        apis = [
            kube.Api(kube.connect(creds, max_connections=runner.POOL)) for _ in range(args.concurrency // 8)
        ]
        stored, nodes = await enroll.enroll(
            apis[0], cars=args.cars, seed=args.seed, start=START, namespace="curbside-cars"
        )
        cars = runner.build_cars(
            stored=stored,
            nodes=nodes,
            apis=apis,
            clock=clock,
            lease_seconds=args.lease_seconds,
            namespace="curbside-cars",
            impersonate=False,
        )
    fleet = mobility.Fleet(
        cars=args.cars, seed=args.seed, start=START, battery_step_percent=args.battery_step
    )
    built = runner.usage()
    setup = time.monotonic() - began
    run = driver.Driver(fleet=fleet, cars=cars, clock=clock, concurrency=args.concurrency)
    await run.warm_up(lease_seconds=args.lease_seconds)
    warm = runner.usage()
    t0, totals0 = time.monotonic(), driver.Totals(**vars(run.totals))
    until = START + args.simulated
    await run.run(stop=asyncio.Event(), until=until, tick_seconds=0.05, max_step_seconds=10.0)
    wall = time.monotonic() - t0
    end = runner.usage()
    await run.close()
    for api in apis:
        await api.aclose()
    simulated = (clock.now() - START).total_seconds() if args.speed > 0 else args.simulated.total_seconds()
    thousands = args.cars / 1000
    writes = (run.totals.patches - totals0.patches) + (run.totals.renewals - totals0.renewals)
    return {
        "setup_s": setup,
        "wall_s": wall,
        "speedup": min(simulated, args.simulated.total_seconds()) / wall,
        "steps": run.totals.steps - totals0.steps,
        "patches": run.totals.patches - totals0.patches,
        "renewals": run.totals.renewals - totals0.renewals,
        "writes_per_s": writes / wall,
        "run_cpu_s": end["cpu_s"] - warm["cpu_s"],
        "cpu_s_per_1000_cars_per_sim_day": (end["cpu_s"] - warm["cpu_s"])
        / thousands
        / (args.simulated / timedelta(days=1)),
        "cpu_share": (end["cpu_s"] - warm["cpu_s"]) / wall,
        "rss_mib": end["rss_mib"],
        "rss_mib_per_1000_cars": (built["rss_mib"] - base["rss_mib"]) / thousands,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cars", type=int, default=10_000)
    p.add_argument("--days", type=float, default=0.0, help="simulated days (with --hours: added)")
    p.add_argument("--hours", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--speed", type=float, default=0.0, help="simulated seconds per wall second (0: max)")
    p.add_argument("--kubeconfig", type=Path, help="write to this API server (default: --null, count only)")
    p.add_argument("--lease-seconds", type=int, default=10)
    p.add_argument("--battery-step", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=64)
    args = p.parse_args()
    args.simulated = timedelta(days=args.days, hours=args.hours) or timedelta(days=1)
    figures = asyncio.run(measure(args))
    mode = "null" if args.kubeconfig is None else "api"
    load = os.getloadavg()[0]
    speed = "max" if not args.speed else f"{args.speed:g}"
    print(
        f"mode={mode} cars={args.cars} simulated={args.simulated} speed={speed} "
        f"battery_step={args.battery_step:g}% lease={args.lease_seconds}s load_avg={load:.1f}"
    )
    print(
        " ".join(
            f"{key}={value:,.2f}" if isinstance(value, float) else f"{key}={value}"
            for key, value in figures.items()
        )
    )


if __name__ == "__main__":
    main()
