"""What the SQLite ledger file says about a job, read inside the caller's transaction.

Why this exists: ``SqliteLedger`` decides which attempt changes and how; the questions it and
its readers ask of the file (an attempt's row, the outputs a submission is compared with, a
job's summary, its live attempts and committed units) are plain queries that change nothing.
Keeping them here, as functions over a connection already in a transaction, keeps the
ledger's class about transitions, and each query next to the index it relies on.
"""

from __future__ import annotations

import sqlite3

from curbside_api import intervals
from curbside_operator.dispatch.ledger import CommittedUnit, Fenced, LiveAttempt, Revoked, UnknownUnit
from curbside_operator.dispatch.sqlite_schema import SUBMITTED, SUCCEEDED
from curbside_operator.dispatch.sqlite_units import JobRow, from_us
from curbside_operator.facts import Summary


def attempt(db: sqlite3.Connection, j: JobRow, unit: int, number: int) -> tuple[str, str, int, str | None]:
    """(status, car, deadline, output hash) of the attempt; ``Fenced`` if there is none."""
    if not 0 <= unit < j.units:
        raise UnknownUnit(j.key, unit)
    row = db.execute(
        "SELECT status, car, deadline_us, output_hash FROM attempts"
        " WHERE job = ? AND unit = ? AND attempt = ?",
        (j.id, unit, number),
    ).fetchone()
    if row is None:
        raise Fenced(job=j.key, unit=unit, attempt=number, reason="no such attempt")
    return row[0], row[1], row[2], row[3]


def candidates(db: sqlite3.Connection, j: JobRow, unit: int, number: int) -> list[str]:
    """The outputs a submission for this attempt is compared with: the unit's committed output
    for a probe, else the distinct outputs already submitted for the unit."""
    row = db.execute(
        "SELECT a.probe, u.output_hash FROM attempts a JOIN units u ON u.job = a.job AND u.unit = a.unit"
        " WHERE a.job = ? AND a.unit = ? AND a.attempt = ?",
        (j.id, unit, number),
    ).fetchone()
    if row is not None and row[0]:
        return [row[1]] if row[1] else []
    groups = db.execute(
        "SELECT DISTINCT grp FROM attempts WHERE job = ? AND unit = ? AND status = ? AND grp IS NOT NULL"
        " ORDER BY grp",
        (j.id, unit, SUBMITTED),
    ).fetchall()
    return [g for (g,) in groups]


def summary(db: sqlite3.Connection, j: JobRow) -> Summary:
    """The job at a glance: its counters, its completed units as intervals, the cars at work."""
    row = db.execute(
        "SELECT pending, running, succeeded, failed, reruns, departures, issued, results, verified,"
        " cursor FROM jobs WHERE id = ?",
        (j.id,),
    ).fetchone()
    pending, running, succeeded, failed, reruns, departures, issued, results, verified, cursor = row
    runs = db.execute(  # gaps and islands: consecutive units share unit - row_number()
        "SELECT min(unit), max(unit) FROM (SELECT unit, unit - row_number() OVER (ORDER BY unit) AS g"
        " FROM units INDEXED BY units_state WHERE job = ? AND state = ?) GROUP BY g ORDER BY 1",
        (j.id, SUCCEEDED),
    ).fetchall()
    cars = db.execute(
        "SELECT DISTINCT car FROM attempts INDEXED BY attempts_live_job WHERE status = 'live' AND job = ?",
        (j.id,),
    )
    return Summary(
        open_hardware=open_hardware(db, j, cursor),
        total=j.units,
        pending=pending,
        running=running,
        succeeded=succeeded,
        failed=failed,
        completed_intervals=intervals.format(runs),
        reruns=reruns,
        cars_in_use=frozenset(car for (car,) in cars),
        departures=departures,
        attempts=issued,
        results=results,
        verified=verified,
    )


def open_hardware(db: sqlite3.Connection, j: JobRow, cursor: int) -> frozenset[str] | None:
    """Which hardware classes could take a lease of this job now (None: any); ``cursor`` is the
    job's next never-issued unit."""
    if cursor < j.units:
        return None
    classes = db.execute(
        "SELECT DISTINCT hw FROM units INDEXED BY units_open WHERE job = ? AND open_slots > 0", (j.id,)
    ).fetchall()
    if any(hw is None for (hw,) in classes):
        return None
    return frozenset(hw for (hw,) in classes)


def live(db: sqlite3.Connection, j: JobRow) -> list[LiveAttempt]:
    """The job's live attempts, by unit and attempt."""
    rows = db.execute(
        "SELECT unit, attempt, car, owner, deadline_us FROM attempts INDEXED BY attempts_live_job"
        " WHERE status = 'live' AND job = ? ORDER BY unit, attempt",
        (j.id,),
    ).fetchall()
    return [LiveAttempt(unit, attempt, car, owner, from_us(due)) for unit, attempt, car, owner, due in rows]


def results(db: sqlite3.Connection, j: JobRow) -> list[CommittedUnit]:
    """The job's committed units, by unit."""
    rows = db.execute(
        "SELECT unit, commit_id, output_hash, result_ref FROM units INDEXED BY units_state"
        " WHERE job = ? AND state = ? ORDER BY unit",
        (j.id, SUCCEEDED),
    ).fetchall()
    return [CommittedUnit(*row) for row in rows]


def revoked(db: sqlite3.Connection) -> list[Revoked]:
    """Every revoked result still to be taken out of the published output, by job and unit."""
    rows = db.execute(
        "SELECT j.key, r.unit, r.output_hash FROM revoked r JOIN jobs j ON j.id = r.job"
        " ORDER BY j.key, r.unit"
    ).fetchall()
    return [Revoked(*row) for row in rows]
