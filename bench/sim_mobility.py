"""How fast the fleet simulator's mobility model runs: simulated seconds per wall-clock second.

Why this exists: the simulator must move 10,000 simulated cars on a 2-core machine faster
than real time. This drives ``curbside_sim.mobility.Fleet`` alone (no
agents, no API server) the way the simulator process does, in fixed simulated steps, and
prints two lines to paste into a report. On a shared machine the wall-clock speed-up depends
on the load; the CPU-second figure is what one free core delivers.

    .venv/bin/python bench/sim_mobility.py --cars 10000 --days 1
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from curbside_sim import mobility


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cars", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=1.0, help="simulated days to run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--step-seconds", type=float, default=60.0, help="simulated seconds per advance()")
    args = parser.parse_args()

    start = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
    began = time.perf_counter()
    fleet = mobility.Fleet(cars=args.cars, seed=args.seed, start=start)
    built = time.perf_counter()
    cpu_began = time.process_time()
    kinds: Counter[mobility.Kind] = Counter()
    simulated = timedelta(days=args.days).total_seconds()
    steps = max(1, round(simulated / args.step_seconds))
    for step in range(steps + 1):
        for event in fleet.advance(start + timedelta(seconds=simulated * step / steps)):
            kinds[event.kind] += 1
    done = time.perf_counter()
    cpu = time.process_time() - cpu_began

    run = done - built
    events = sum(kinds.values())
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"cars={args.cars} simulated_days={args.days:g} steps={steps} setup_s={built - began:.2f} "
        f"run_s={run:.2f} run_cpu_s={cpu:.2f} events={events} "
        f"(vanished={kinds[mobility.Kind.VANISHED]} reappeared={kinds[mobility.Kind.REAPPEARED]})"
    )
    print(
        f"speedup={simulated / run:,.0f}x simulated seconds per wall second "
        f"({simulated / cpu:,.0f}x per CPU second: what one free core gives); "
        f"events_per_s={events / run:,.0f}; events_per_car_day={events / args.cars / args.days:.1f}; "
        f"max_rss_mib={rss_mib:.0f}"
    )


if __name__ == "__main__":
    main()
