"""The process that ``tests/unit/dispatch/test_crash.py`` SIGKILLs: it hammers a ledger file
with random operations and prints every commit the ledger acknowledged, so the parent knows
what must survive.

    python -m tests.support.ledger_crash_child LEDGER_PATH SEED
"""

from __future__ import annotations

import random
import sys
from datetime import timedelta

from curbside_operator.dispatch.ledger import Fenced, Quarantined
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from tests.support.ledger import T0

JOBS = {"demo/single/1": (1, 1), "demo/quorum/1": (3, 2)}  # job -> (replicas, quorum)
UNITS = 300
CARS = [f"c{i}" for i in range(12)]


def main() -> None:
    path, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    ledger = SqliteLedger(path, durable=False)  # the weaker setting: a process crash must still lose nothing
    for job, (replicas, quorum) in JOBS.items():
        ledger.add_job(
            job,
            units=UNITS,
            unit_timeout=timedelta(seconds=30),
            max_attempts=50,
            replicas=replicas,
            quorum=quorum,
        )
    print("ready", flush=True)
    held: list[tuple[str, str, int, int]] = []
    step = 0
    while True:
        step += 1
        now = T0 + timedelta(seconds=step)
        job, car = rng.choice(list(JOBS)), rng.choice(CARS)
        roll = rng.random()
        if roll < 0.4:
            try:  # a car outvoted twice is quarantined: the crash must keep that consistent too
                lease = ledger.lease(job, car=car, owner=f"o{CARS.index(car) % 4}", now=now)
            except Quarantined:
                continue
            if lease is not None and not lease.resumed:
                held.append((job, car, lease.unit, lease.attempt))
        elif roll < 0.85 and held:
            job, car, unit, attempt = held.pop(rng.randrange(len(held)))
            out = "good" if rng.random() < 0.9 else f"bad-{car}"
            try:
                done = ledger.complete(job, unit, attempt, car=car, output_hash=out, result_ref="r", now=now)
            except Fenced:
                continue
            if done.committed and not done.duplicate:
                print("commit", job, unit, done.commit_id, flush=True)
        elif roll < 0.95:
            ledger.fence_car(None, car, now=now)
        else:
            ledger.expire(now)


if __name__ == "__main__":
    main()
