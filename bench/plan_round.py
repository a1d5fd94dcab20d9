"""What one job-loop round costs the operator at fleet size: ``reconcile.jobs.plan_jobs``.

Why this exists: at 10,000 cars on two cores, judging the fleet (a placement candidate of
every car) is the expensive part of a round: profiled with py-spy during the full bench's
departures with every round judging it, the job loop took 83 % of the operator's samples and
building the candidates 63 %, which left its dispatcher about 20 requests/s. So a round judges
the fleet only when some job has room for another car. This prints, per fleet size, the
milliseconds of a round whose jobs are all full (the steady state) next to a round where one
job has room (one that judges the fleet), measured in the same process.

    .venv/bin/python bench/plan_round.py [--cars 1000 10000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator.dispatch import ledger
from curbside_operator.reconcile import jobs

# The planner's input builders are the table tests' (tests/support/planning.py): the repository
# root is not on the path when this runs as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.planning import NOW, car, job, pod, summary

Fleet = dict[str, vn.VehicleNode]
Sums = dict[str, ledger.Summary]


def round_ms(
    views: list[jobs.JobView], pods: list[jobs.PodView], fleet: Fleet, sums: Sums, rounds: int
) -> float:
    ready = dict.fromkeys(fleet, True)
    took = []
    for _ in range(rounds):
        began = time.perf_counter()
        jobs.plan_jobs(
            views,
            pods,
            fleet,
            ready,
            sums,
            now=NOW,
            departure_lead=timedelta(minutes=2),
            expected_unit=timedelta(seconds=30),
        )
        took.append((time.perf_counter() - began) * 1000)
    return statistics.median(took)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cars", type=int, nargs="+", default=[1000, 10_000])
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args()
    print(f"{'cars':>7} {'all jobs full, ms':>18} {'a job with room, ms':>20}")
    for n in args.cars:
        names = [f"car-{i:05d}" for i in range(n)]
        fleet = {name: car(name) for name in names}
        half = n // 2
        full = job("full", placement={"maxCars": half})
        pods = [pod(name, "full") for name in names[:half]]
        busy = summary(total=20 * n, pending=20 * n - half, running=half, cars=frozenset(names[:half]))
        hungry = job("hungry", placement={"maxCars": 1})
        steady = round_ms([full], pods, fleet, {full.key: busy}, args.rounds)
        placing = round_ms([full, hungry], pods, fleet, {full.key: busy, hungry.key: summary()}, args.rounds)
        print(f"{n:>7,} {steady:>18.2f} {placing:>20.2f}")


if __name__ == "__main__":
    main()
