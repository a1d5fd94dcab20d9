"""How a unit's state follows from its attempts, inside one SQLite ledger transaction.

Why this exists: every ledger operation ends the same way: some attempt changed status, and
the unit must be brought in line (pending or running, how many more attempts it wants, failed
when out of budget, succeeded when a quorum agrees), with the job's counters moved to match.
Keeping those rules in one place, as plain functions over a connection that is already in a
transaction, means ``SqliteLedger``'s methods only decide *which* attempt changes and never
repeat the bookkeeping.

The rules, for a job with ``replicas`` R and ``quorum`` Q:

- A unit wants ``max(R - submitted, Q - best, 0)`` live attempts, where ``submitted`` is how
  many results wait for a vote and ``best`` is the size of the largest group of equal output
  hashes among them. ``open_slots`` is that minus the live attempts: lease picks units with
  ``open_slots > 0``. With R = Q = 1 this is "one live attempt until committed".
- The unit commits when Q submitted hashes agree: those attempts become COMMITTED, the
  other submitted ones REJECTED, the still-live ones SUPERSEDED (fenced: their results
  would be late).
- The unit fails when its charged failures reach ``max_attempts * R``, or when that many
  results came in without a quorum and nothing is still running.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta

from curbside_operator.dispatch.sqlite_schema import (
    COMMITTED,
    FAILED,
    LIVE,
    PENDING,
    REJECTED,
    RUNNING,
    SUBMITTED,
    SUCCEEDED,
    SUPERSEDED,
    WASTED,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def to_us(when: datetime) -> int:
    """Microseconds since the epoch (exact); the ledger stores every time this way."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when}: the ledger needs aware times")
    return (when - EPOCH) // MICROSECOND


def from_us(us: int) -> datetime:
    return EPOCH + us * MICROSECOND


@dataclasses.dataclass(frozen=True)
class JobRow:
    """A job's settings (immutable once added, so they may be cached)."""

    id: int
    key: str
    units: int
    timeout_us: int
    max_attempts: int
    replicas: int
    quorum: int
    distinct_owners: bool

    @property
    def budget(self) -> int:
        """Failed attempts (or results without a quorum) a unit may use up before it fails."""
        return self.max_attempts * self.replicas


def pick(db: sqlite3.Connection, j: JobRow, *, car: str, owner: str) -> int | None:
    """The lowest unit wanting an attempt that neither this car (nor, when the job wants
    distinct owners, another car of this owner) already works on; a fresh unit gets its row."""
    clash = "(a.car = :car OR a.owner = :owner)" if j.distinct_owners else "a.car = :car"
    row = db.execute(
        "SELECT u.unit FROM units u INDEXED BY units_open WHERE u.job = :job AND u.open_slots > 0"
        " AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.job = u.job AND a.unit = u.unit"
        " AND a.status IN ('live', 'submitted')"
        f" AND {clash}) ORDER BY u.unit LIMIT 1",
        {"job": j.id, "car": car, "owner": owner},
    ).fetchone()
    (cursor,) = db.execute("SELECT cursor FROM jobs WHERE id = ?", (j.id,)).fetchone()
    if cursor < j.units and (row is None or cursor < row[0]):
        db.execute("INSERT INTO units (job, unit, state) VALUES (?, ?, ?)", (j.id, cursor, PENDING))
        db.execute("UPDATE jobs SET cursor = cursor + 1 WHERE id = ?", (j.id,))
        return int(cursor)
    return None if row is None else int(row[0])


def issue(db: sqlite3.Connection, j: JobRow, unit: int, *, car: str, owner: str, deadline_us: int) -> int:
    """A new live attempt of ``unit`` for ``car``; returns its number (the unit's new epoch)."""
    (epoch,) = db.execute(
        "UPDATE units SET epoch = epoch + 1 WHERE job = ? AND unit = ? RETURNING epoch", (j.id, unit)
    ).fetchone()
    db.execute(
        "INSERT INTO attempts (job, unit, attempt, car, owner, status, deadline_us)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (j.id, unit, epoch, car, owner, LIVE, deadline_us),
    )
    db.execute("UPDATE jobs SET issued = issued + 1 WHERE id = ?", (j.id,))
    settle(db, j, unit)
    return int(epoch)


def end(db: sqlite3.Connection, j: JobRow, unit: int, attempt: int, *, status: str, charge: bool) -> str:
    """End a live attempt with ``status`` (charged against the budget or not); returns its car."""
    (car,) = db.execute(
        "UPDATE attempts SET status = ? WHERE job = ? AND unit = ? AND attempt = ? RETURNING car",
        (status, j.id, unit, attempt),
    ).fetchone()
    db.execute("UPDATE jobs SET reruns = reruns + ? WHERE id = ?", (int(status in WASTED), j.id))
    db.execute(
        "UPDATE units SET failures = failures + ? WHERE job = ? AND unit = ?", (int(charge), j.id, unit)
    )
    settle(db, j, unit)
    return str(car)


def submit(
    db: sqlite3.Connection, j: JobRow, unit: int, attempt: int, *, winner: tuple[str, str, str]
) -> bool:
    """Record a live attempt's result ``(commit id, output hash, result ref)``; commit the unit
    if a quorum now agrees. Returns whether the unit committed with this output."""
    _, output_hash, result_ref = winner
    db.execute(
        "UPDATE attempts SET status = ?, output_hash = ?, result_ref = ?"
        " WHERE job = ? AND unit = ? AND attempt = ?",
        (SUBMITTED, output_hash, result_ref, j.id, unit, attempt),
    )
    (agree,) = db.execute(
        "SELECT count(*) FROM attempts WHERE job = ? AND unit = ? AND status = ? AND output_hash = ?",
        (j.id, unit, SUBMITTED, output_hash),
    ).fetchone()
    if agree >= j.quorum:
        decide(db, j, unit, winner=winner)
        return True
    settle(db, j, unit)
    return False


def settle(db: sqlite3.Connection, j: JobRow, unit: int) -> None:
    """Recompute the unit's state and open slots from its attempts; fail it when out of budget."""
    state, failures = db.execute(
        "SELECT state, failures FROM units WHERE job = ? AND unit = ?", (j.id, unit)
    ).fetchone()
    if state in (SUCCEEDED, FAILED):
        return
    groups = db.execute(
        "SELECT count(*) FROM attempts WHERE job = ? AND unit = ? AND status = ? GROUP BY output_hash",
        (j.id, unit, SUBMITTED),
    ).fetchall()
    submitted, best = sum(n for (n,) in groups), max((n for (n,) in groups), default=0)
    (live,) = db.execute(
        "SELECT count(*) FROM attempts WHERE job = ? AND unit = ? AND status = ?", (j.id, unit, LIVE)
    ).fetchone()
    if failures >= j.budget or (submitted >= j.budget and live == 0):
        decide(db, j, unit, winner=None)
        return
    wanted = max(j.replicas - submitted, j.quorum - best, 0)
    _set_state(db, j, unit, old=state, new=RUNNING if live else PENDING, open_slots=max(0, wanted - live))


def decide(db: sqlite3.Connection, j: JobRow, unit: int, *, winner: tuple[str, str, str] | None) -> None:
    """Commit ``winner`` (commit id, output hash, result ref) for the unit, or fail it (None)."""
    (state,) = db.execute("SELECT state FROM units WHERE job = ? AND unit = ?", (j.id, unit)).fetchone()
    where = "job = ? AND unit = ? AND status = ?"
    db.execute(f"UPDATE attempts SET status = ? WHERE {where}", (SUPERSEDED, j.id, unit, LIVE))
    if winner is not None:
        db.execute(
            f"UPDATE attempts SET status = ? WHERE {where} AND output_hash = ?",
            (COMMITTED, j.id, unit, SUBMITTED, winner[1]),
        )
        db.execute(
            "UPDATE units SET commit_id = ?, output_hash = ?, result_ref = ? WHERE job = ? AND unit = ?",
            (*winner, j.id, unit),
        )
    db.execute(f"UPDATE attempts SET status = ? WHERE {where}", (REJECTED, j.id, unit, SUBMITTED))
    _set_state(db, j, unit, old=state, new=FAILED if winner is None else SUCCEEDED, open_slots=0)


def _set_state(db: sqlite3.Connection, j: JobRow, unit: int, *, old: str, new: str, open_slots: int) -> None:
    db.execute(
        "UPDATE units SET state = ?, open_slots = ? WHERE job = ? AND unit = ?", (new, open_slots, j.id, unit)
    )
    if old != new:  # the column names come from the fixed set of unit states
        db.execute(f"UPDATE jobs SET {old} = {old} - 1, {new} = {new} + 1 WHERE id = ?", (j.id,))
