"""Crash consistency: a process working a ledger file is SIGKILLed at a random moment; the
file reopens consistent, every commit it acknowledged is still there with the same id, and
the jobs can still be finished with nothing lost.

The kill is asynchronous to the child's loop (it keeps working while the parent reads its
output), so over the runs it lands inside transactions, between them and inside fsyncs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from tests.support import ledger_crash_child as crash_child
from tests.support.ledger import T0

REPO = Path(__file__).resolve().parents[3]


def _run_and_kill(path: Path, *, seed: int, commits_before_kill: int) -> set[tuple[str, int, str]]:
    """Start the child, SIGKILL it once it acknowledged that many commits; what it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.ledger_crash_child", str(path), str(seed)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged: set[tuple[str, int, str]] = set()
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        while len(acknowledged) < commits_before_kill:
            line = child.stdout.readline()
            assert line, f"child died on its own with code {child.poll()}"
            _, job, unit, cid = line.split()
            acknowledged.add((job, int(unit), cid))
        child.send_signal(signal.SIGKILL)
        # Commits it printed after our last read were acknowledged too; a line the kill cut
        # short was not (its acknowledgement never reached anyone whole).
        for line in child.stdout:
            if not line.endswith("\n") or len(line.split()) != 4:
                continue
            _, job, unit, cid = line.split()
            acknowledged.add((job, int(unit), cid))
    finally:
        child.kill()
        assert child.wait(timeout=30) == -signal.SIGKILL
    return acknowledged


@pytest.mark.parametrize(("seed", "commits"), [(1, 5), (2, 40), (3, 120)])
def test_sigkill_at_any_point_leaves_a_consistent_ledger(tmp_path: Path, seed: int, commits: int) -> None:
    path = tmp_path / "ledger.db"
    acknowledged = _run_and_kill(path, seed=seed, commits_before_kill=commits)

    ledger = SqliteLedger(path, durable=False)  # opens: the dead child's lock died with it
    assert ledger.verify() == []
    stored = {(job, r.unit, r.commit_id) for job in ledger.jobs() for r in ledger.results(job)}
    assert acknowledged <= stored, f"acknowledged commits lost: {sorted(acknowledged - stored)[:5]}"

    # Liveness after the crash: much later every dead car's attempt expires and honest cars
    # finish the rest. Nothing was lost, nothing commits twice.
    later = T0 + timedelta(days=1)
    ledger.expire(later)
    for job in crash_child.JOBS:
        car = 0
        while (lease := ledger.lease(job, car=f"r{car}", owner=f"r{car}", now=later)) is not None:
            ledger.complete(
                job, lease.unit, lease.attempt, car=f"r{car}", output_hash="good", result_ref="r", now=later
            )
            car += 1
        summary = ledger.summary(job)
        assert summary.succeeded == summary.total == crash_child.UNITS, summary
    assert ledger.verify() == []
    final = {(job, r.unit, r.commit_id) for job in ledger.jobs() for r in ledger.results(job)}
    assert stored <= final
    ledger.close()
