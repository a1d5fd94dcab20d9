"""``verify`` finds what a bug could leave in the ledger: each broken invariant is named.

Without this, every ``assert ledger.verify() == []`` elsewhere could pass by checking nothing.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from tests.support.ledger import JOB, T0

CORRUPTIONS = {
    "counters": ("UPDATE jobs SET succeeded = succeeded + 1", "counters"),
    "a second live attempt on one car": (
        "INSERT INTO attempts (job, unit, attempt, car, owner, status, deadline_us)"
        " SELECT job, unit, attempt + 1, car, owner, status, deadline_us FROM attempts;"
        " UPDATE units SET epoch = 2",
        "two live or submitted attempts on car",
    ),
    "a lost attempt row": ("DELETE FROM attempts", "attempts numbered"),
    "a probe of an undecided unit": ("UPDATE attempts SET probe = 1", "probe attempt 1 but is running"),
    "a stuck pending unit": (
        "UPDATE attempts SET status = 'released'; UPDATE units SET state = 'pending', open_slots = 0;"
        " UPDATE jobs SET running = 0, pending = pending + 1",
        "wants no attempt",
    ),
    "a failure counted without its charged attempt": (
        "UPDATE units SET failures = 1",
        "has 1 failures but 0 charged attempts",
    ),
    "a unit charged twice to one car": (
        "UPDATE attempts SET status = 'failed', charged = 1;"
        " INSERT INTO attempts (job, unit, attempt, car, owner, status, deadline_us, charged)"
        " SELECT job, unit, 2, car, owner, 'failed', deadline_us, 1 FROM attempts;"
        " UPDATE units SET epoch = 2, failures = 2, state = 'pending', open_slots = 1;"
        " UPDATE jobs SET issued = 2, running = 0, pending = pending + 1",
        "charged twice to car a",
    ),
    "a unit leased again to the car that failed it": (
        "UPDATE attempts SET status = 'failed', charged = 1;"
        " INSERT INTO attempts (job, unit, attempt, car, owner, status, deadline_us)"
        " SELECT job, unit, 2, car, owner, 'live', deadline_us FROM attempts;"
        " UPDATE units SET epoch = 2, failures = 1; UPDATE jobs SET issued = 2",
        "leased to car a again after it failed there",
    ),
    "a bench in a job that is gone": (
        "INSERT INTO benched (job, car, streak) VALUES (99, 'a', 1)",
        "benched for job 99",
    ),
    "a revoked result listed for a unit that committed again": (
        "INSERT INTO revoked (job, unit, output_hash) SELECT job, unit, 'h' FROM units;"
        " UPDATE attempts SET status = 'committed'; UPDATE units SET state = 'succeeded', commit_id = 'c',"
        " output_hash = 'h'; UPDATE jobs SET running = 0, succeeded = 1",
        "listed as revoked but is succeeded",
    ),
    "no draw secret": ("DELETE FROM secrets", "draw secret is missing"),
    "a draw secret that is no key": ("UPDATE secrets SET value = 'guessable'", "draw secret is malformed"),
    "a commit without its result": (
        "UPDATE attempts SET status = 'committed'; UPDATE units SET state = 'succeeded';"
        " UPDATE jobs SET running = 0, succeeded = 1",
        "committed None",
    ),
}


@pytest.mark.parametrize(("statements", "words"), CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_verify_names_each_broken_invariant(tmp_path: Path, statements: str, words: str) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db", durable=False)
    ledger.add_job(JOB, units=2, unit_timeout=timedelta(seconds=60), max_attempts=2)
    assert ledger.lease(JOB, car="a", owner="o", now=T0) is not None
    assert ledger.verify() == []
    ledger._db.executescript(statements)  # what a bug (never a crash) could leave behind
    found = ledger.verify()
    assert any(words in problem for problem in found), found
    ledger.close()
