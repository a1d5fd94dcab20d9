"""Verdicts, trust, credit and quarantine, inside one SQLite ledger transaction.

Why this exists: cars belong to the public, and some will be broken or cheat (SETI@home found
teams forging results). A result counts only when an independent car agrees with it, or when
it matches a known answer; a car earns trust and credit only for such results, and a car that
is caught is quarantined and its unverified work done again elsewhere. ``sqlite_units``
decides *when* a unit is decided; this module decides what that means for the cars involved.

The rules (BOINC's adaptive replication, sharpened):

- When a unit commits by a quorum of two or more, every agreeing result is ``valid``: its car's
  streak on the job's model grows, and it is credited the median normalised compute-seconds of
  the agreeing results (so a slow or stalling car cannot inflate its claim) plus the energy it
  used. Every outvoted result is ``invalid``: the streak drops to zero, and the car's
  ``quarantine_after``-th invalid result quarantines it.
- A unit leased first to a car trusted on the model (streak >= ``trust_after``) runs once,
  unless the unit falls in the job's ``spot_percent``. Its result is accepted ``on-trust``:
  credited, but not counted as validation, and taken back if the car is later quarantined.
- A probe re-runs a verified unit (same hardware class, a car and owner that never saw it). A
  probe that misses the known answer quarantines its car at once.
- Quarantine fences the car's attempts, drops its results that still wait for a quorum, and
  reopens every unit it decided alone on trust.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import statistics
from typing import Any

from curbside_operator.dispatch.ledger import Validation
from curbside_operator.dispatch.sqlite_schema import (
    COMMITTED,
    INCONCLUSIVE,
    INVALID,
    LIVE,
    ON_TRUST,
    PENDING,
    REJECTED,
    SUBMITTED,
    SUCCEEDED,
    VALID,
)
from curbside_operator.facts import Standing

US = 1_000_000


def validation_json(v: Validation) -> str:
    return json.dumps(dataclasses.asdict(v), sort_keys=True)


def validation_from(text: str) -> Validation:
    data: dict[str, Any] = json.loads(text or "{}")
    return Validation(**data)


def _seq(db: sqlite3.Connection) -> int:
    (value,) = db.execute(
        "INSERT INTO counters (name, value) VALUES ('seq', 1)"
        " ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value"
    ).fetchone()
    return int(value)


def touch(db: sqlite3.Connection, car: str, owner: str) -> None:
    """Make sure the car has a record (its owner as last seen)."""
    db.execute(
        "INSERT INTO cars (car, owner) VALUES (?, ?) ON CONFLICT (car) DO UPDATE SET owner = excluded.owner"
        " WHERE cars.owner != excluded.owner",
        (car, owner),
    )


def quarantined(db: sqlite3.Connection, car: str) -> str | None:
    row = db.execute("SELECT quarantine FROM cars WHERE car = ?", (car,)).fetchone()
    return None if row is None else row[0]


def trusted(db: sqlite3.Connection, car: str, model: str) -> bool:
    row = db.execute("SELECT trusted FROM trust WHERE car = ? AND model = ?", (car, model)).fetchone()
    return bool(row and row[0])


def _record(
    db: sqlite3.Connection,
    car: str,
    v: Validation,
    *,
    valid: bool,
    credit_s: float = 0.0,
    joules: float = 0.0,
) -> int:
    """Count one verdict for ``car``; returns its invalid results so far."""
    db.execute("INSERT OR IGNORE INTO cars (car, owner) VALUES (?, '')", (car,))
    if valid:
        db.execute(
            "INSERT INTO trust (car, model, streak, trusted) VALUES (?, ?, 1, ?)"
            " ON CONFLICT (car, model) DO UPDATE SET streak = streak + 1,"
            " trusted = trusted OR streak + 1 >= ?",
            (car, v.model, int(v.trust_after <= 1), v.trust_after),
        )
    else:
        db.execute(
            "INSERT INTO trust (car, model, streak, trusted) VALUES (?, ?, 0, 0)"
            " ON CONFLICT (car, model) DO UPDATE SET streak = 0, trusted = 0",
            (car, v.model),
        )
    (invalid,) = db.execute(
        "UPDATE cars SET valid = valid + ?, invalid = invalid + ?, credit_s = credit_s + ?,"
        " joules = joules + ?, seq = ? WHERE car = ? RETURNING invalid",
        (int(valid), int(not valid), credit_s, joules, _seq(db), car),
    ).fetchone()
    return int(invalid)


def _elapsed(row: sqlite3.Row | tuple[Any, ...], timeout_us: int) -> float:
    issued_us, done_us = int(row[0]), int(row[1] or row[0])
    return max(0, min(done_us - issued_us, timeout_us)) / US


def judge(
    db: sqlite3.Connection, job_id: int, unit: int, *, timeout_us: int, replicas: int, v: Validation
) -> list[tuple[str, str]]:
    """Give the results of a just-decided unit their verdicts; returns the cars to quarantine
    as ``(car, reason)`` (the caller quarantines them once the unit is settled)."""
    rows = db.execute(
        "SELECT attempt, car, status, issued_us, done_us, speed, watts FROM attempts"
        " WHERE job = ? AND unit = ? AND status IN (?, ?) AND NOT probe AND verdict IS NULL",
        (job_id, unit, COMMITTED, REJECTED),
    ).fetchall()
    (state,) = db.execute("SELECT state FROM units WHERE job = ? AND unit = ?", (job_id, unit)).fetchone()
    winners = [r for r in rows if r[2] == COMMITTED]
    caught: list[tuple[str, str]] = []
    if replicas <= 1:  # no redundancy asked for: nothing is verified, nobody is judged
        return caught
    verified = state == SUCCEEDED and len(winners) >= 2
    share = statistics.median(_elapsed(r[3:5], timeout_us) * r[5] for r in winners) if winners else 0.0
    for attempt, car, status, issued_us, done_us, _speed, watts in rows:
        if status == COMMITTED:
            verdict = VALID if verified else ON_TRUST
            energy = _elapsed((issued_us, done_us), timeout_us) * watts
            if verified:
                _record(db, car, v, valid=True, credit_s=share, joules=energy)
            else:
                db.execute("INSERT OR IGNORE INTO cars (car, owner) VALUES (?, '')", (car,))
                db.execute(
                    "UPDATE cars SET credit_s = credit_s + ?, joules = joules + ?, seq = ? WHERE car = ?",
                    (share, energy, _seq(db), car),
                )
            credit = share
        elif state == SUCCEEDED:
            verdict, credit = INVALID, 0.0
            if _record(db, car, v, valid=False) >= v.quarantine_after:
                caught.append((car, f"{v.quarantine_after} results outvoted by other cars"))
        else:
            verdict, credit = INCONCLUSIVE, 0.0
        db.execute(
            "UPDATE attempts SET verdict = ?, credit_s = ? WHERE job = ? AND unit = ? AND attempt = ?",
            (verdict, credit, job_id, unit, attempt),
        )
    if verified:
        db.execute("UPDATE units SET verified = 1 WHERE job = ? AND unit = ?", (job_id, unit))
        db.execute("UPDATE jobs SET verified = verified + 1 WHERE id = ?", (job_id,))
    return caught


def check_probe(
    db: sqlite3.Connection,
    job_id: int,
    unit: int,
    attempt: int,
    *,
    group: str,
    timeout_us: int,
    v: Validation,
) -> tuple[str, str] | None:
    """Judge a probe's output against the unit's known answer; the car to quarantine, if caught."""
    (known,) = db.execute(
        "SELECT output_hash FROM units WHERE job = ? AND unit = ?", (job_id, unit)
    ).fetchone()
    car, issued_us, done_us, speed, watts = db.execute(
        "SELECT car, issued_us, done_us, speed, watts FROM attempts"
        " WHERE job = ? AND unit = ? AND attempt = ?",
        (job_id, unit, attempt),
    ).fetchone()
    passed = group == known
    seconds = _elapsed((issued_us, done_us), timeout_us)
    credit = seconds * speed if passed else 0.0
    _record(db, car, v, valid=passed, credit_s=credit, joules=seconds * watts if passed else 0.0)
    db.execute(
        "UPDATE attempts SET verdict = ?, credit_s = ? WHERE job = ? AND unit = ? AND attempt = ?",
        (VALID if passed else INVALID, credit, job_id, unit, attempt),
    )
    return None if passed else (car, f"missed the known answer of a check unit (unit {unit})")


def pick_probe(
    db: sqlite3.Connection, job_id: int, *, car: str, owner: str, hardware: str, start: int
) -> int | None:
    """A verified unit of this hardware class that neither the car nor its owner ever touched,
    at or after ``start`` (wrapping), or None."""
    query = (
        "SELECT u.unit FROM units u INDEXED BY units_verified WHERE u.job = ? AND u.hw = ? AND u.verified = 1"
        " AND u.state = ? AND u.unit {} ? AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.job = u.job"
        " AND a.unit = u.unit AND (a.car = ? OR a.owner = ?)) ORDER BY u.unit LIMIT 1"
    )
    for op in (">=", "<"):
        row = db.execute(query.format(op), (job_id, hardware, SUCCEEDED, start, car, owner)).fetchone()
        if row is not None:
            return int(row[0])
    return None


def standings(db: sqlite3.Connection, since: int) -> tuple[int, list[Standing]]:
    rows = db.execute(
        "SELECT c.car, c.owner, c.valid, c.invalid, c.credit_s, c.joules, c.quarantine, c.seq,"
        " coalesce(max(t.streak), 0), coalesce(group_concat(CASE WHEN t.trusted THEN t.model END), '')"
        " FROM cars c LEFT JOIN trust t ON t.car = c.car WHERE c.seq > ? GROUP BY c.car ORDER BY c.car",
        (since,),
    ).fetchall()
    newest = max((r[7] for r in rows), default=since)
    return newest, [
        Standing(
            car=r[0],
            owner=r[1],
            valid=r[2],
            invalid=r[3],
            streak=r[8],
            trusted=tuple(sorted(m for m in r[9].split(",") if m)),
            credit_seconds=r[4],
            energy_joules=r[5],
            quarantine=r[6],
        )
        for r in rows
    ]


def mark_quarantined(db: sqlite3.Connection, car: str, reason: str) -> bool:
    """Record the quarantine; False when the car already was (or is unknown to the ledger)."""
    row = db.execute(
        "UPDATE cars SET quarantine = ?, seq = ? WHERE car = ? AND quarantine IS NULL RETURNING car",
        (reason, _seq(db), car),
    ).fetchone()
    return row is not None


def quarantine_work(
    db: sqlite3.Connection, car: str
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]], list[tuple[int, int, int, float]]]:
    """The car's attempts a quarantine must undo: (live, waiting for a quorum, decided on trust)."""
    live = db.execute(
        "SELECT job, unit, attempt FROM attempts WHERE car = ? AND status = ?", (car, LIVE)
    ).fetchall()
    waiting = db.execute(
        "SELECT job, unit, attempt FROM attempts WHERE car = ? AND status = ?", (car, SUBMITTED)
    ).fetchall()
    alone = db.execute(
        "SELECT job, unit, attempt, credit_s FROM attempts WHERE car = ? AND status = ? AND verdict = ?",
        (car, COMMITTED, ON_TRUST),
    ).fetchall()
    return live, waiting, alone


def revoke(
    db: sqlite3.Connection,
    job_id: int,
    unit: int,
    attempt: int,
    *,
    car: str,
    credit_s: float,
    replicas: int,
    quorum: int,
) -> None:
    """Take back a unit decided on trust by a quarantined car: its result no longer counts, it
    is listed for removal from the published output (``revoked``), and the unit runs again,
    fully replicated. (The caller settles the unit.)"""
    db.execute(
        "INSERT OR REPLACE INTO revoked (job, unit, output_hash) SELECT job, unit, output_hash FROM units"
        " WHERE job = ? AND unit = ? AND output_hash IS NOT NULL",
        (job_id, unit),
    )
    db.execute(
        "UPDATE attempts SET status = ?, verdict = 'revoked' WHERE job = ? AND unit = ? AND attempt = ?",
        (REJECTED, job_id, unit, attempt),
    )
    db.execute(
        "UPDATE cars SET credit_s = max(0, credit_s - ?), seq = ? WHERE car = ?", (credit_s, _seq(db), car)
    )
    db.execute(
        "UPDATE units SET state = ?, commit_id = NULL, output_hash = NULL, result_ref = NULL, target = ?,"
        " need = ?, decided_us = NULL WHERE job = ? AND unit = ?",
        (PENDING, replicas, quorum, job_id, unit),
    )
    db.execute("UPDATE jobs SET succeeded = succeeded - 1, pending = pending + 1 WHERE id = ?", (job_id,))


def unpublished(db: sqlite3.Connection, gone: list[tuple[str, int, str]]) -> None:
    """Forget revoked results (job key, unit, output hash) the published output no longer holds."""
    db.executemany(
        "DELETE FROM revoked WHERE job = (SELECT id FROM jobs WHERE key = ?) AND unit = ?"
        " AND output_hash = ?",
        gone,
    )
