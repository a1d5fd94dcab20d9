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
