"""The ledger's rules, one table row per scenario: a job's settings, then steps, each with the
answer the ledger must give (a lease, a commit, ``FENCED``, a list of fenced attempts, or a
part of the summary). Times are seconds after T0; every car is its own owner unless a step
names one. The fixture checks the ledger's invariants after every scenario.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from curbside_operator.dispatch.ledger import (
    Fenced,
    JobConflict,
    LedgerBusy,
    UnknownJob,
    UnknownUnit,
    commit_id,
)
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from tests.support.ledger import JOB, T0, at

FENCED = "Fenced"
Step = tuple[str, dict[str, Any], Any]


def leased(unit: int, attempt: int, *, resumed: bool = False) -> tuple[str, int, int, bool]:
    return ("lease", unit, attempt, resumed)


def committed(*, duplicate: bool = False, done: bool = True) -> tuple[str, bool, bool]:
    return ("commit", duplicate, done)


@dataclasses.dataclass
class Case:
    steps: list[Step]
    units: int = 3
    timeout: float = 10
    max_attempts: int = 3
    replicas: int = 1
    quorum: int = 1
    distinct_owners: bool = True


CASES: dict[str, Case] = {
    "units are leased lowest first, one per car, then nothing": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("lease", {"car": "b"}, leased(1, 1)),
            ("lease", {"car": "c"}, leased(2, 1)),
            ("lease", {"car": "d"}, None),
            ("summary", {}, {"pending": 0, "running": 3, "cars_in_use": {"a", "b", "c"}}),
        ]
    ),
    "a car asking again gets its attempt back, not a second unit": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("lease", {"car": "a", "t": 1}, leased(0, 1, resumed=True)),
            ("lease", {"car": "a", "per_car": 2}, leased(1, 1)),
            ("summary", {}, {"attempts": 2}),
        ]
    ),
    "an expired attempt's unit is leased again first, with the next attempt number": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("lease", {"car": "b", "t": 10}, leased(0, 2)),
            ("complete", {"car": "a", "unit": 0, "attempt": 1, "t": 10}, FENCED),
            ("complete", {"car": "b", "unit": 0, "attempt": 2, "t": 11}, committed()),
            ("summary", {}, {"succeeded": 1, "reruns": 1, "completed_intervals": "0"}),
        ]
    ),
    "renewing pushes the deadline; renewing too late is fenced": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("renew", {"car": "a", "unit": 0, "attempt": 1, "t": 8}, 18.0),
            ("lease", {"car": "b", "t": 12}, leased(1, 1)),
            ("renew", {"car": "a", "unit": 0, "attempt": 1, "t": 18}, FENCED),
            ("summary", {}, {"pending": 2, "running": 1}),
        ]
    ),
    "a unit out of attempts fails, and the job goes on": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("expire", {"t": 10}, [(0, 1, "a")]),
            ("lease", {"car": "b", "t": 10}, leased(0, 2)),
            ("expire", {"t": 20}, [(0, 2, "b")]),
            ("summary", {}, {"failed": 1, "pending": 2}),
            ("lease", {"car": "c", "t": 20}, leased(1, 1)),
        ],
        max_attempts=2,
    ),
    "the old attempt is fenced before the unit is issued again": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("fence", {"car": "a", "t": 1}, [(0, 1, "a")]),
            ("lease", {"car": "b", "t": 1}, leased(0, 2)),
            ("complete", {"car": "a", "unit": 0, "attempt": 1, "t": 2}, FENCED),
            ("complete", {"car": "b", "unit": 0, "attempt": 2, "t": 2}, committed()),
            ("summary", {}, {"succeeded": 1, "departures": 1, "reruns": 1}),
        ]
    ),
    "a departure does not use up an attempt, unless charged": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("fence", {"car": "a"}, [(0, 1, "a")]),
            ("lease", {"car": "b"}, leased(0, 2)),
            ("fence", {"car": "b", "charge": True}, [(0, 2, "b")]),
            ("summary", {}, {"failed": 1, "pending": 2}),
        ],
        max_attempts=1,
    ),
    "a replay gets the same answer; another output for the same attempt is fenced": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("complete", {"car": "a", "unit": 0, "attempt": 1, "out": "h1"}, committed()),
            (
                "complete",
                {"car": "a", "unit": 0, "attempt": 1, "out": "h1", "t": 60},
                committed(duplicate=True),
            ),
            ("complete", {"car": "a", "unit": 0, "attempt": 1, "out": "h2"}, FENCED),
            ("summary", {}, {"succeeded": 1, "running": 0}),
        ]
    ),
    "a stale attempt is fenced even when nobody holds the unit now": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("release", {"car": "a", "unit": 0, "attempt": 1}, True),
            ("complete", {"car": "a", "unit": 0, "attempt": 1}, FENCED),
            ("release", {"car": "a", "unit": 0, "attempt": 1}, False),
            ("lease", {"car": "a"}, leased(0, 2)),
        ]
    ),
    "a partitioned car's late result is refused after it was fenced": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("fence", {"car": "a", "t": 25}, [(0, 1, "a")]),
            ("lease", {"car": "b", "t": 25}, leased(0, 2)),
            ("complete", {"car": "b", "unit": 0, "attempt": 2, "t": 30, "out": "hb"}, committed()),
            ("complete", {"car": "a", "unit": 0, "attempt": 1, "t": 600, "out": "ha"}, FENCED),
            ("complete", {"car": "a", "unit": 0, "attempt": 1, "t": 600, "out": "hb"}, FENCED),
        ],
        timeout=1000,
    ),
    "another car cannot act on an attempt": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("renew", {"car": "b", "unit": 0, "attempt": 1}, FENCED),
            ("complete", {"car": "b", "unit": 0, "attempt": 1}, FENCED),
            ("release", {"car": "b", "unit": 0, "attempt": 1}, FENCED),
            ("complete", {"car": "a", "unit": 0, "attempt": 2}, FENCED),
            ("summary", {}, {"running": 1}),
        ]
    ),
    "a graceful release is free; a release with an error uses up an attempt": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("release", {"car": "a", "unit": 0, "attempt": 1}, True),
            ("lease", {"car": "b"}, leased(0, 2)),
            ("release", {"car": "b", "unit": 0, "attempt": 2, "error": "model crashed"}, True),
            ("summary", {}, {"failed": 1, "pending": 1, "reruns": 2}),
        ],
        units=2,
        max_attempts=1,
    ),
    "replicas of a unit go to distinct owners, never one owner twice": Case(
        [
            ("lease", {"car": "a", "owner": "x"}, leased(0, 1)),
            ("lease", {"car": "b", "owner": "x"}, leased(1, 1)),
            ("lease", {"car": "c", "owner": "y"}, leased(0, 2)),
            ("lease", {"car": "d", "owner": "y"}, leased(1, 2)),
            ("lease", {"car": "e", "owner": "x"}, None),
        ],
        units=2,
        replicas=2,
        quorum=2,
    ),
    "without distinct owners, replicas still go to distinct cars": Case(
        [
            ("lease", {"car": "a", "owner": "x"}, leased(0, 1)),
            ("lease", {"car": "b", "owner": "x"}, leased(0, 2)),
            ("lease", {"car": "a", "owner": "x", "per_car": 2}, None),
        ],
        units=1,
        replicas=2,
        quorum=2,
        distinct_owners=False,
    ),
    "a replicated unit commits when a quorum agrees; the outvoted result is refused": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("lease", {"car": "b"}, leased(0, 2)),
            ("lease", {"car": "c"}, leased(0, 3)),
            ("complete", {"car": "a", "unit": 0, "attempt": 1, "out": "good"}, committed(done=False)),
            ("complete", {"car": "b", "unit": 0, "attempt": 2, "out": "forged"}, committed(done=False)),
            (
                "complete",
                {"car": "a", "unit": 0, "attempt": 1, "out": "good"},
                committed(duplicate=True, done=False),
            ),
            ("complete", {"car": "c", "unit": 0, "attempt": 3, "out": "good"}, committed()),
            ("complete", {"car": "b", "unit": 0, "attempt": 2, "out": "forged"}, FENCED),
            ("complete", {"car": "a", "unit": 0, "attempt": 1, "out": "good"}, committed(duplicate=True)),
            ("summary", {}, {"succeeded": 1, "cars_in_use": set()}),
        ],
        units=1,
        replicas=3,
        quorum=2,
    ),
    "a quorum that disagrees asks for another replica; a late replica is superseded": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("lease", {"car": "b"}, leased(0, 2)),
            ("lease", {"car": "c"}, None),
            ("complete", {"car": "a", "unit": 0, "attempt": 1, "out": "h1"}, committed(done=False)),
            ("complete", {"car": "b", "unit": 0, "attempt": 2, "out": "h2"}, committed(done=False)),
            ("lease", {"car": "c"}, leased(0, 3)),
            ("lease", {"car": "d"}, None),
            ("complete", {"car": "c", "unit": 0, "attempt": 3, "out": "h2"}, committed()),
            ("summary", {}, {"succeeded": 1, "reruns": 0, "attempts": 3}),
        ],
        units=1,
        replicas=2,
        quorum=2,
    ),
    "replicas that never agree fail the unit once the budget is spent": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("complete", {"car": "a", "unit": 0, "attempt": 1, "out": "h1"}, committed(done=False)),
            ("lease", {"car": "b"}, leased(0, 2)),
            ("complete", {"car": "b", "unit": 0, "attempt": 2, "out": "h2"}, committed(done=False)),
            ("lease", {"car": "c"}, None),
            ("summary", {}, {"failed": 1}),
        ],
        units=1,
        replicas=2,
        quorum=2,
        max_attempts=1,
    ),
    "a car never gets back a unit it failed; the unit waits for another car": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("release", {"car": "a", "unit": 0, "attempt": 1, "error": "model crashed"}, True),
            ("lease", {"car": "a"}, leased(1, 1)),
            ("expire", {"t": 10}, [(1, 1, "a")]),
            ("lease", {"car": "a", "t": 10}, leased(2, 1)),
            ("lease", {"car": "b", "t": 10}, leased(0, 2)),
            ("summary", {}, {"failed": 0, "running": 2, "pending": 1}),
        ],
        max_attempts=2,
    ),
    "renewals stop at four unit timeouts after the lease": Case(
        [
            ("lease", {"car": "a"}, leased(0, 1)),
            ("renew", {"car": "a", "unit": 0, "attempt": 1, "t": 8}, 18.0),
            ("renew", {"car": "a", "unit": 0, "attempt": 1, "t": 16}, 26.0),
            ("renew", {"car": "a", "unit": 0, "attempt": 1, "t": 24}, 34.0),
            ("renew", {"car": "a", "unit": 0, "attempt": 1, "t": 32}, 40.0),
            ("renew", {"car": "a", "unit": 0, "attempt": 1, "t": 39}, 40.0),
            ("renew", {"car": "a", "unit": 0, "attempt": 1, "t": 40}, FENCED),
            ("lease", {"car": "a", "t": 40}, None),
            ("lease", {"car": "b", "t": 40}, leased(0, 2)),
            ("summary", {}, {"reruns": 1, "running": 1}),
        ],
        units=1,
    ),
    "completed units are summarised in interval notation": Case(
        [
            *[("lease", {"car": f"c{i}"}, leased(i, 1)) for i in range(6)],
            *[("complete", {"car": f"c{i}", "unit": i, "attempt": 1}, committed()) for i in (0, 1, 2, 4)],
            ("summary", {}, {"completed_intervals": "0-2,4", "succeeded": 4, "running": 2, "pending": 0}),
        ],
        units=6,
    ),
}


def _run(ledger: SqliteLedger, op: str, args: dict[str, Any], expected: Any) -> Any:
    args = dict(args)
    now = at(args.pop("t", 0))
    car = args.pop("car", "")
    unit, attempt = args.pop("unit", 0), args.pop("attempt", 1)
    if op == "lease":
        got = ledger.lease(
            JOB, car=car, owner=args.pop("owner", f"owner-{car}"), now=now, per_car=args.pop("per_car", 1)
        )
        return None if got is None else leased(got.unit, got.attempt, resumed=got.resumed)
    if op == "renew":
        return (ledger.renew(JOB, unit, attempt, car=car, now=now) - T0).total_seconds()
    if op == "complete":
        out = args.pop("out", "h")
        done = ledger.complete(JOB, unit, attempt, car=car, output_hash=out, result_ref=f"r-{out}", now=now)
        assert done.commit_id == commit_id(JOB, unit, out)
        return committed(duplicate=done.duplicate, done=done.committed)
    if op == "release":
        return ledger.release(JOB, unit, attempt, car=car, now=now, error=args.pop("error", None))
    if op == "fence":
        ended = ledger.fence_car(JOB, car, now=now, charge=args.pop("charge", False))
        return [(e.unit, e.attempt, e.car) for e in ended]
    if op == "expire":
        return [(e.unit, e.attempt, e.car) for e in ledger.expire(now)]
    assert op == "summary"
    summary = ledger.summary(JOB)
    assert summary.pending + summary.running + summary.succeeded + summary.failed == summary.total
    return {key: getattr(summary, key) for key in expected}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_ledger_rules(ledger: SqliteLedger, case: Case) -> None:
    ledger.add_job(
        JOB,
        units=case.units,
        unit_timeout=timedelta(seconds=case.timeout),
        max_attempts=case.max_attempts,
        replicas=case.replicas,
        quorum=case.quorum,
        distinct_owners=case.distinct_owners,
    )
    for number, (op, args, expected) in enumerate(case.steps):
        try:
            got = _run(ledger, op, args, expected)
        except Fenced:
            got = FENCED
        if isinstance(expected, dict):
            expected = {k: frozenset(v) if isinstance(v, set) else v for k, v in expected.items()}
        assert got == expected, f"step {number}: {op} {args}"
        assert ledger.verify() == [], f"after step {number}"


def test_add_job_is_idempotent_and_refuses_other_settings(ledger: SqliteLedger) -> None:
    settings: dict[str, Any] = {"units": 5, "unit_timeout": timedelta(seconds=30), "max_attempts": 3}
    ledger.add_job(JOB, **settings)
    ledger.add_job(JOB, **settings)
    with pytest.raises(JobConflict, match="units 5 -> 6"):
        ledger.add_job(JOB, **{**settings, "units": 6})
    with pytest.raises(ValueError, match="quorum"):
        ledger.add_job("demo/other/1", **settings, replicas=2, quorum=3)
    assert ledger.jobs() == [JOB]


def test_unknown_jobs_and_units_are_named(ledger: SqliteLedger) -> None:
    with pytest.raises(UnknownJob, match="demo/nope"):
        ledger.lease("demo/nope/1", car="a", owner="o", now=T0)
    ledger.add_job(JOB, units=2, unit_timeout=timedelta(seconds=5), max_attempts=1)
    with pytest.raises(UnknownUnit, match="no unit 2"):
        ledger.renew(JOB, 2, 1, car="a", now=T0)
    with pytest.raises(ValueError, match="naive"):
        ledger.lease(JOB, car="a", owner="o", now=T0.replace(tzinfo=None))


def test_fencing_a_car_everywhere_and_deleting_a_job(ledger: SqliteLedger) -> None:
    other = "demo/embed/9f"
    for job in (JOB, other):
        ledger.add_job(job, units=2, unit_timeout=timedelta(seconds=60), max_attempts=2)
        assert ledger.lease(job, car="a", owner="o", now=T0) is not None
    assert [(e.job, e.unit, e.car) for e in ledger.fence_car(None, "a", now=at(1))] == [
        (JOB, 0, "a"),
        (other, 0, "a"),
    ]
    assert ledger.live(JOB) == []
    ledger.delete_job(other)
    ledger.delete_job(other)
    assert ledger.jobs() == [JOB]
    with pytest.raises(UnknownJob):
        ledger.summary(other)


def test_a_job_recreated_under_its_name_is_a_new_job(ledger: SqliteLedger) -> None:
    old, new = "demo/seti/uid-1", "demo/seti/uid-2"
    for job in (old, new):
        ledger.add_job(job, units=1, unit_timeout=timedelta(seconds=60), max_attempts=2)
    lease = ledger.lease(old, car="a", owner="o", now=T0)
    assert lease is not None
    with pytest.raises(Fenced, match="no such attempt"):
        ledger.complete(new, 0, lease.attempt, car="a", output_hash="h", result_ref="r", now=T0)


def test_state_survives_reopening_and_one_process_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    first = SqliteLedger(path)
    first.add_job(JOB, units=3, unit_timeout=timedelta(seconds=60), max_attempts=2)
    lease = first.lease(JOB, car="a", owner="o", now=T0)
    assert lease is not None
    done = first.complete(JOB, 0, 1, car="a", output_hash="h", result_ref="r", now=at(1))
    with pytest.raises(LedgerBusy):
        SqliteLedger(path, busy_timeout=0.05)
    first.close()
    again = SqliteLedger(path)
    assert [r.commit_id for r in again.results(JOB)] == [done.commit_id]
    assert again.complete(JOB, 0, 1, car="a", output_hash="h", result_ref="r", now=at(2)).duplicate
    assert again.summary(JOB).succeeded == 1
    assert again.verify() == []
    again.close()
