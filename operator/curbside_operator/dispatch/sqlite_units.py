"""How a unit's state follows from its attempts, inside one SQLite ledger transaction.

Why this exists: every ledger operation ends the same way: some attempt changed status, and
the unit must be brought in line (pending or running, how many more attempts it wants, failed
when out of budget, succeeded when a quorum agrees), with the job's counters moved to match.
Keeping those rules in one place, as plain functions over a connection that is already in a
transaction, means ``SqliteLedger``'s methods only decide *which* attempt changes and never
repeat the bookkeeping.

The rules, for a job with ``replicas`` R and ``quorum`` Q:

- R and Q are the unit's own (``target``/``need``), set when its first attempt is issued: the
  job's, or 1 and 1 when adaptive replication trusts the first car (``sqlite_trust``).
- A unit wants ``max(R - submitted, Q - best, 0)`` live attempts, where ``submitted`` is how
  many results wait for a vote and ``best`` is the size of the largest group of equal output
  hashes among them. ``open_slots`` is that minus the live attempts: lease picks units with
  ``open_slots > 0``. With R = Q = 1 this is "one live attempt until committed".
- The unit commits when Q submitted hashes agree: those attempts become COMMITTED, the
  other submitted ones REJECTED, the still-live ones SUPERSEDED (fenced: their results
  would be late).
- The unit fails when its charged failures reach ``max_attempts * R``, or when that many
  results came in without a quorum and nothing is still running. A car is charged at most
  once per unit: once charged, it never gets the unit again (``sqlite_limits``), so the
  failures are those of distinct cars.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta

from curbside_operator.dispatch import sqlite_limits as limits_
from curbside_operator.dispatch import sqlite_trust as trust_
from curbside_operator.dispatch.ledger import Lease, Validation, commit_id
from curbside_operator.dispatch.sqlite_schema import (
    CHECKED,
    COMMITTED,
    EXPIRED,
    FAILED,
    FENCED,
    INVALID,
    LIVE,
    PENDING,
    REJECTED,
    RUNNING,
    SUBMITTED,
    SUCCEEDED,
    SUPERSEDED,
    WASTED,
)
from curbside_operator.facts import CarFacts

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
    validation: Validation = dataclasses.field(default_factory=Validation)
    secret: str = dataclasses.field(default="", repr=False)
    """The ledger's draw secret (``sqlite_limits.draw``): never leaves the operator."""

    def budget(self, replicas: int) -> int:
        """Failed attempts (or results without a quorum) a unit may use up before it fails."""
        return self.max_attempts * max(replicas, 1)


def pick(db: sqlite3.Connection, j: JobRow, *, car: str, owner: str, hardware: str = "") -> int | None:
    """The lowest unit wanting an attempt of this hardware class that neither this car (nor,
    when the job wants distinct owners, another car of this owner) works on or has sent a
    result for, and that this car never failed; a fresh unit gets its row."""
    clash = "(a.car = :car OR a.owner = :owner)" if j.distinct_owners else "a.car = :car"
    row = db.execute(
        "SELECT u.unit FROM units u INDEXED BY units_open WHERE u.job = :job AND u.open_slots > 0"
        " AND (u.hw IS NULL OR u.hw = :hw) AND NOT EXISTS (SELECT 1 FROM attempts a"
        " WHERE a.job = u.job AND a.unit = u.unit"
        " AND (a.status IN ('live', 'submitted', 'committed', 'rejected') AND "
        f"{clash} OR a.charged AND a.car = :car)) ORDER BY u.unit LIMIT 1",
        {"job": j.id, "car": car, "owner": owner, "hw": hardware},
    ).fetchone()
    (cursor,) = db.execute("SELECT cursor FROM jobs WHERE id = ?", (j.id,)).fetchone()
    if cursor < j.units and (row is None or cursor < row[0]):
        db.execute("INSERT INTO units (job, unit, state) VALUES (?, ?, ?)", (j.id, cursor, PENDING))
        db.execute("UPDATE jobs SET cursor = cursor + 1 WHERE id = ?", (j.id,))
        return int(cursor)
    return None if row is None else int(row[0])


def issue(
    db: sqlite3.Connection,
    j: JobRow,
    unit: int,
    *,
    facts: CarFacts,
    car: str,
    now_us: int,
    deadline_us: int,
    probe: bool = False,
) -> int:
    """A new live attempt of ``unit`` for ``car``; returns its number (the unit's new epoch).
    The unit's first attempt fixes its hardware class and how many results it needs."""
    (epoch, hw) = db.execute(
        "UPDATE units SET epoch = epoch + 1 WHERE job = ? AND unit = ? RETURNING epoch, hw", (j.id, unit)
    ).fetchone()
    if hw is None:
        v = j.validation
        alone = (
            v.adaptive
            and j.replicas > 1
            and trust_.trusted(db, car, v.model)
            and limits_.draw(j.secret, j.key, "spot", unit) >= v.spot_percent
        )
        db.execute(
            "UPDATE units SET hw = ?, target = ?, need = ? WHERE job = ? AND unit = ?",
            # Only results that are compared need one hardware class; a unit run once goes anywhere.
            (
                facts.hardware if j.replicas > 1 else None,
                1 if alone else j.replicas,
                1 if alone else j.quorum,
                j.id,
                unit,
            ),
        )
    db.execute(
        "INSERT INTO attempts (job, unit, attempt, car, owner, status, deadline_us, hw, probe, issued_us,"
        " speed, watts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            j.id,
            unit,
            epoch,
            car,
            facts.owner,
            LIVE,
            deadline_us,
            facts.hardware,
            int(probe),
            now_us,
            facts.speed,
            facts.watts,
        ),
    )
    db.execute("UPDATE jobs SET issued = issued + 1 WHERE id = ?", (j.id,))
    settle(db, j, unit)
    return int(epoch)


def lease(
    db: sqlite3.Connection, j: JobRow, *, car: str, facts: CarFacts, now_us: int, per_car: int
) -> Lease | None:
    """A new attempt for ``car`` (``Ledger.lease``), once the job's overdue attempts are ended;
    the car's oldest live attempt again (``resumed``) when it already holds ``per_car``."""
    due = db.execute(
        "SELECT unit, attempt FROM attempts INDEXED BY attempts_live_job"
        " WHERE status = 'live' AND job = ? AND deadline_us <= ?",
        (j.id, now_us),
    ).fetchall()
    for unit, attempt in due:  # fenced before anything is reissued, in this transaction
        end(db, j, unit, attempt, status=EXPIRED, charge=True, now_us=now_us)
    held = db.execute(
        "SELECT unit, attempt, deadline_us FROM attempts INDEXED BY attempts_live_car"
        " WHERE status = 'live' AND car = ? AND job = ? ORDER BY unit, attempt",
        (car, j.id),
    ).fetchall()
    if len(held) >= per_car:
        return Lease(held[0][0], held[0][1], from_us(held[0][2]), resumed=True)
    if limits_.benched(db, j.id, car, now_us):
        return None
    unit = _probe(db, j, car=car, facts=facts) if j.validation.probe_percent else None
    probe = unit is not None
    if unit is None:
        unit = pick(db, j, car=car, owner=facts.owner, hardware=facts.hardware)
    if unit is None:
        return None
    deadline_us = now_us + j.timeout_us
    attempt = issue(db, j, unit, facts=facts, car=car, now_us=now_us, deadline_us=deadline_us, probe=probe)
    return Lease(unit, attempt, from_us(deadline_us))


def _probe(db: sqlite3.Connection, j: JobRow, *, car: str, facts: CarFacts) -> int | None:
    """The unit to check the car with, if this lease is a probe (a fixed function of the ledger's
    secret, job, car and leases issued so far) and a verified unit it never saw exists."""
    (issued,) = db.execute("SELECT issued FROM jobs WHERE id = ?", (j.id,)).fetchone()
    if limits_.draw(j.secret, j.key, "probe", car, issued) >= j.validation.probe_percent:
        return None
    start = limits_.draw(j.secret, j.key, "start", car, issued) * j.units // 100
    return trust_.pick_probe(db, j.id, car=car, owner=facts.owner, hardware=facts.hardware, start=start)


def end(
    db: sqlite3.Connection, j: JobRow, unit: int, attempt: int, *, status: str, charge: bool, now_us: int
) -> str:
    """End a live attempt with ``status`` (charged against the budget or not); returns its car.
    A charge also bars the car from the unit and counts towards benching it."""
    (car, probe) = db.execute(
        "UPDATE attempts SET status = ?, charged = ? WHERE job = ? AND unit = ? AND attempt = ?"
        " RETURNING car, probe",
        (status, int(charge), j.id, unit, attempt),
    ).fetchone()
    if charge:
        limits_.strike(db, j.id, car, now_us=now_us, timeout_us=j.timeout_us)
    if probe:  # a check of a decided unit: nothing about the unit changes
        return str(car)
    db.execute("UPDATE jobs SET reruns = reruns + ? WHERE id = ?", (int(status in WASTED), j.id))
    db.execute(
        "UPDATE units SET failures = failures + ? WHERE job = ? AND unit = ?", (int(charge), j.id, unit)
    )
    settle(db, j, unit)
    return str(car)


def submit(
    db: sqlite3.Connection,
    j: JobRow,
    unit: int,
    attempt: int,
    *,
    output_hash: str,
    result_ref: str,
    group: str,
    now_us: int,
) -> tuple[str, str, str] | None:
    """Record a live attempt's result, counted with the submissions of output ``group``; commit
    the unit if a quorum now agrees. Returns the winner ``(commit id, output hash, result ref)``
    if the unit committed with this group's output."""
    (car,) = db.execute(
        "UPDATE attempts SET status = ?, output_hash = ?, result_ref = ?, grp = ?, done_us = ?"
        " WHERE job = ? AND unit = ? AND attempt = ? RETURNING car",
        (SUBMITTED, output_hash, result_ref, group, now_us, j.id, unit, attempt),
    ).fetchone()
    db.execute("UPDATE jobs SET results = results + 1 WHERE id = ?", (j.id,))
    limits_.clear(db, j.id, car)
    (agree, need) = db.execute(
        "SELECT count(*), (SELECT need FROM units WHERE job = :j AND unit = :u) FROM attempts"
        " WHERE job = :j AND unit = :u AND status = :s AND grp = :g",
        {"j": j.id, "u": unit, "s": SUBMITTED, "g": group},
    ).fetchone()
    if agree >= (need or j.quorum):
        (ref,) = db.execute(  # the group's first submission is its canonical output
            "SELECT result_ref FROM attempts WHERE job = ? AND unit = ? AND output_hash = ? AND grp = ?"
            " ORDER BY attempt LIMIT 1",
            (j.id, unit, group, group),
        ).fetchone()
        winner = (commit_id(j.key, unit, group), group, ref)
        decide(db, j, unit, winner=winner, now_us=now_us)
        return winner
    settle(db, j, unit, now_us=now_us)
    return None


def check(
    db: sqlite3.Connection,
    j: JobRow,
    unit: int,
    attempt: int,
    *,
    output_hash: str,
    result_ref: str,
    group: str,
    now_us: int,
) -> None:
    """Record a probe's result and judge it against the unit's known answer; a miss quarantines
    its car. The unit itself does not change."""
    (car,) = db.execute(
        "UPDATE attempts SET status = ?, output_hash = ?, result_ref = ?, grp = ?, done_us = ?"
        " WHERE job = ? AND unit = ? AND attempt = ? RETURNING car",
        (CHECKED, output_hash, result_ref, group, now_us, j.id, unit, attempt),
    ).fetchone()
    db.execute("UPDATE jobs SET results = results + 1 WHERE id = ?", (j.id,))
    limits_.clear(db, j.id, car)
    caught = trust_.check_probe(db, j.id, unit, attempt, group=group, timeout_us=j.timeout_us, v=j.validation)
    if caught is not None:
        quarantine(db, *caught, now_us=now_us)


def settle(db: sqlite3.Connection, j: JobRow, unit: int, *, now_us: int = 0) -> None:
    """Recompute the unit's state and open slots from its attempts; fail it when out of budget."""
    state, failures, target, need = db.execute(
        "SELECT state, failures, target, need FROM units WHERE job = ? AND unit = ?", (j.id, unit)
    ).fetchone()
    if state in (SUCCEEDED, FAILED):
        return
    replicas, quorum = target or j.replicas, need or j.quorum
    groups = db.execute(
        "SELECT count(*) FROM attempts WHERE job = ? AND unit = ? AND status = ? GROUP BY grp",
        (j.id, unit, SUBMITTED),
    ).fetchall()
    submitted, best = sum(n for (n,) in groups), max((n for (n,) in groups), default=0)
    (live,) = db.execute(
        "SELECT count(*) FROM attempts WHERE job = ? AND unit = ? AND status = ? AND NOT probe",
        (j.id, unit, LIVE),
    ).fetchone()
    budget = j.budget(replicas)
    if failures >= budget or (submitted >= budget and live == 0):
        decide(db, j, unit, winner=None, now_us=now_us)
        return
    wanted = max(replicas - submitted, quorum - best, 0)
    _set_state(db, j, unit, old=state, new=RUNNING if live else PENDING, open_slots=max(0, wanted - live))


def decide(
    db: sqlite3.Connection, j: JobRow, unit: int, *, winner: tuple[str, str, str] | None, now_us: int
) -> None:
    """Commit ``winner`` (commit id, output hash, result ref) for the unit, or fail it (None);
    then judge the results and quarantine the cars they convict."""
    (state,) = db.execute("SELECT state FROM units WHERE job = ? AND unit = ?", (j.id, unit)).fetchone()
    where = "job = ? AND unit = ? AND status = ? AND NOT probe"
    db.execute(f"UPDATE attempts SET status = ? WHERE {where}", (SUPERSEDED, j.id, unit, LIVE))
    if winner is not None:
        db.execute(
            f"UPDATE attempts SET status = ? WHERE {where} AND grp = ?",
            (COMMITTED, j.id, unit, SUBMITTED, winner[1]),
        )
        db.execute(
            "UPDATE units SET commit_id = ?, output_hash = ?, result_ref = ?, decided_us = ?"
            " WHERE job = ? AND unit = ?",
            (*winner, now_us, j.id, unit),
        )
        db.execute("DELETE FROM revoked WHERE job = ? AND unit = ?", (j.id, unit))  # its file is replaced
    db.execute(f"UPDATE attempts SET status = ? WHERE {where}", (REJECTED, j.id, unit, SUBMITTED))
    _set_state(db, j, unit, old=state, new=FAILED if winner is None else SUCCEEDED, open_slots=0)
    caught = trust_.judge(db, j.id, unit, timeout_us=j.timeout_us, replicas=j.replicas, v=j.validation)
    for car, reason in caught:
        quarantine(db, car, reason, now_us=now_us)


def quarantine(db: sqlite3.Connection, car: str, reason: str, *, now_us: int) -> bool:
    """Quarantine ``car`` (see ``sqlite_trust``); False when it already was."""
    if not trust_.mark_quarantined(db, car, reason):
        return False
    live, waiting, alone = trust_.quarantine_work(db, car)
    jobs = {int(row[0]): job_row(db, int(row[0])) for row in (*live, *waiting, *alone)}
    for job_id, unit, attempt in live:
        end(db, jobs[job_id], unit, attempt, status=FENCED, charge=False, now_us=now_us)
    for job_id, unit, attempt in waiting:  # its votes no longer count
        db.execute(
            "UPDATE attempts SET status = ?, verdict = ? WHERE job = ? AND unit = ? AND attempt = ?",
            (REJECTED, INVALID, job_id, unit, attempt),
        )
        settle(db, jobs[job_id], unit, now_us=now_us)
    for job_id, unit, attempt, credit_s in alone:
        j = jobs[job_id]
        trust_.revoke(
            db, job_id, unit, attempt, car=car, credit_s=credit_s, replicas=j.replicas, quorum=j.quorum
        )
        settle(db, j, unit, now_us=now_us)
    return True


def job_row(db: sqlite3.Connection, job_id: int) -> JobRow:
    """A job's settings, read from its row."""
    row = db.execute(
        "SELECT id, key, units, timeout_us, max_attempts, replicas, quorum, distinct_owners, validation,"
        " (SELECT value FROM secrets WHERE name = ?) FROM jobs WHERE id = ?",
        (limits_.DRAW_SECRET, job_id),
    ).fetchone()
    job_id, key, units, timeout_us, max_attempts, replicas, quorum, distinct, validation, secret = row
    return JobRow(
        job_id,
        key,
        units,
        timeout_us,
        max_attempts,
        replicas,
        quorum,
        bool(distinct),
        trust_.validation_from(validation),
        secret,
    )


def _set_state(db: sqlite3.Connection, j: JobRow, unit: int, *, old: str, new: str, open_slots: int) -> None:
    db.execute(
        "UPDATE units SET state = ?, open_slots = ? WHERE job = ? AND unit = ?", (new, open_slots, j.id, unit)
    )
    if old != new:  # the column names come from the fixed set of unit states
        db.execute(f"UPDATE jobs SET {old} = {old} - 1, {new} = {new} + 1 WHERE id = ?", (j.id,))
