"""``SqliteLedger``: the default work-unit ledger, one SQLite file on the operator's volume.

Why this exists: the operator needs a durable, transactional store for millions of unit
attempts without running a database server next to it. SQLite in WAL mode gives atomic
transactions that survive a SIGKILL at any instruction (the next open rolls the WAL forward
or back), and the file is opened in exclusive locking mode, so one process at a time holds
it: there is exactly one writer, and a second operator replica gets ``LedgerBusy``.

How the contract of ``ledger.Ledger`` is kept:

- Every method is one ``BEGIN IMMEDIATE`` transaction. Fencing an attempt and making its unit
  leasable again happen in the same transaction, so no reader ever sees a new attempt while
  the old one is still live.
- Units are rows only once touched: a job of ten million units costs one row until cars
  lease it. Units at or past the job's ``cursor`` are fresh (pending, no attempt yet).
- What a unit's state becomes after an attempt changes is decided in ``sqlite_units``; the
  tables and the invariants ``verify`` checks are in ``sqlite_schema``.
- Times are integer microseconds since the epoch, from the caller's ``now``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from curbside_operator.dispatch import sqlite_limits as limits_
from curbside_operator.dispatch import sqlite_reads as reads_
from curbside_operator.dispatch import sqlite_trust as trust_
from curbside_operator.dispatch import sqlite_units as units_
from curbside_operator.dispatch.ledger import (
    Commit,
    CommittedUnit,
    EndedAttempt,
    Fenced,
    JobConflict,
    Lease,
    LedgerBusy,
    LiveAttempt,
    Quarantined,
    Revoked,
    UnknownJob,
    Validation,
    commit_id,
)
from curbside_operator.dispatch.sqlite_schema import (
    CHECKED,
    COMMITTED,
    ERRORED,
    EXPIRED,
    FENCED,
    LIVE,
    RELEASED,
    SCHEMA_VERSION,
    SUBMITTED,
    WHY_NOT_LIVE,
    migrate,
    problems,
)
from curbside_operator.dispatch.sqlite_units import JobRow, from_us, to_us
from curbside_operator.facts import CarFacts, Standing, Summary

_PER_JOB = ("attempts", "units", "benched", "revoked")
_SETTINGS = ("units", "timeout_us", "max_attempts", "replicas", "quorum", "distinct_owners", "validation")


class SqliteLedger:
    """The ledger in one SQLite file (``":memory:"`` for tests). See ``ledger.Ledger``.

    ``durable=False`` skips the fsync per transaction: a SIGKILL still loses nothing, a power
    cut may lose the last transactions (a worker's replay then commits its result again, with
    the same commit id). Thread-safe: one connection behind a lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True, busy_timeout: float = 2.0):
        self.path = os.fspath(path)
        self._lock = threading.RLock()
        self._cache: dict[str, JobRow] = {}
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
        )
        try:
            self._db.execute("PRAGMA locking_mode = EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            with self._tx() as db:
                (version,) = db.execute("PRAGMA user_version").fetchone()
                if version != SCHEMA_VERSION:
                    try:
                        migrate(db, version)
                    except ValueError as error:
                        raise ValueError(f"{self.path}: {error}") from error
                limits_.secret(db)  # made once, in the file: draws stay the same after a restart
        except sqlite3.OperationalError as error:
            self._db.close()
            if "locked" in str(error):
                raise LedgerBusy(f"{self.path} is held by another process") from error
            raise

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- jobs ---------------------------------------------------------------------------------
    def add_job(
        self,
        job: str,
        *,
        units: int,
        unit_timeout: timedelta,
        max_attempts: int,
        replicas: int = 1,
        quorum: int = 1,
        distinct_owners: bool = True,
        validation: Validation | None = None,
    ) -> None:
        if units < 1 or max_attempts < 1 or not 1 <= quorum <= replicas or unit_timeout <= timedelta(0):
            raise ValueError(
                f"job {job}: need units >= 1, max_attempts >= 1, 1 <= quorum <= replicas and a positive "
                f"unit timeout (got {units}, {max_attempts}, {quorum}, {replicas}, {unit_timeout})"
            )
        wanted = (
            units,
            unit_timeout // units_.MICROSECOND,
            max_attempts,
            replicas,
            quorum,
            int(distinct_owners),
            trust_.validation_json(validation or Validation()),
        )
        with self._tx() as db:
            row = db.execute(f"SELECT {', '.join(_SETTINGS)} FROM jobs WHERE key = ?", (job,)).fetchone()
            if row is None:
                db.execute(
                    f"INSERT INTO jobs (key, {', '.join(_SETTINGS)}, pending) VALUES ({', '.join('?' * 9)})",
                    (job, *wanted, units),
                )
            elif tuple(row) != wanted:
                changed = [
                    f"{n} {a} -> {b}" for n, a, b in zip(_SETTINGS, row, wanted, strict=True) if a != b
                ]
                raise JobConflict(f"job {job} exists with other settings: {', '.join(changed)}")

    def delete_job(self, job: str) -> None:
        with self._tx() as db:
            self._cache.pop(job, None)
            row = db.execute("SELECT id FROM jobs WHERE key = ?", (job,)).fetchone()
            if row is not None:
                for table, column in (*((t, "job") for t in _PER_JOB), ("jobs", "id")):
                    db.execute(f"DELETE FROM {table} WHERE {column} = ?", (row[0],))

    def jobs(self) -> list[str]:
        with self._lock:
            return [key for (key,) in self._db.execute("SELECT key FROM jobs ORDER BY key")]

    def _job(self, db: sqlite3.Connection, key: str) -> JobRow:
        job = self._cache.get(key)
        if job is None:
            row = db.execute("SELECT id FROM jobs WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise UnknownJob(key)
            job = self._cache[key] = units_.job_row(db, row[0])
        return job

    # -- attempts -----------------------------------------------------------------------------
    def lease(
        self,
        job: str,
        *,
        car: str,
        owner: str,
        now: datetime,
        per_car: int = 1,
        facts: CarFacts | None = None,
    ) -> Lease | None:
        now_us, facts = to_us(now), facts or CarFacts(owner=owner)
        with self._tx() as db:
            j = self._job(db, job)
            trust_.touch(db, car, facts.owner)
            reason = trust_.quarantined(db, car)
            if reason is None:
                return units_.lease(db, j, car=car, facts=facts, now_us=now_us, per_car=per_car)
        raise Quarantined(car, reason)

    def renew(self, job: str, unit: int, attempt: int, *, car: str, now: datetime) -> datetime:
        now_us = to_us(now)
        with self._tx() as db:
            j = self._job(db, job)
            fenced = self._check_live(db, j, unit, attempt, car=car, now_us=now_us)
            if fenced is None:
                deadline_us = limits_.renew(db, j.id, unit, attempt, now_us=now_us, timeout_us=j.timeout_us)
                if deadline_us is not None:
                    return from_us(deadline_us)
                units_.end(db, j, unit, attempt, status=EXPIRED, charge=True, now_us=now_us)
                fenced = Fenced(job=job, unit=unit, attempt=attempt, reason=WHY_NOT_LIVE[EXPIRED])
        raise fenced

    def release(
        self, job: str, unit: int, attempt: int, *, car: str, now: datetime, error: str | None = None
    ) -> bool:
        now_us = to_us(now)
        with self._tx() as db:
            j = self._job(db, job)
            status, holder, _, _ = reads_.attempt(db, j, unit, attempt)
            if holder != car:
                fenced = Fenced(job=job, unit=unit, attempt=attempt, reason="attempt belongs to another car")
            elif status != LIVE or self._check_live(db, j, unit, attempt, car=car, now_us=now_us):
                return False
            else:
                status = RELEASED if error is None else ERRORED
                units_.end(db, j, unit, attempt, status=status, charge=error is not None, now_us=now_us)
                return True
        raise fenced

    def complete(
        self,
        job: str,
        unit: int,
        attempt: int,
        *,
        car: str,
        output_hash: str,
        result_ref: str,
        now: datetime,
        matches: str | None = None,
    ) -> Commit:
        now_us = to_us(now)
        with self._tx() as db:
            j = self._job(db, job)
            status, holder, _, submitted = reads_.attempt(db, j, unit, attempt)
            fenced: Fenced | None
            if holder == car and status in (SUBMITTED, COMMITTED, CHECKED):
                if submitted == output_hash:  # a replay: the same answer again
                    (group,) = db.execute(
                        "SELECT grp FROM attempts WHERE job = ? AND unit = ? AND attempt = ?",
                        (j.id, unit, attempt),
                    ).fetchone()
                    group = group or output_hash
                    cid = commit_id(job, unit, group)
                    return Commit(cid, duplicate=True, committed=status == COMMITTED, output_hash=group)
                fenced = Fenced(
                    job=job, unit=unit, attempt=attempt, reason="attempt already sent another output"
                )
            else:
                fenced = self._check_live(db, j, unit, attempt, car=car, now_us=now_us)
            if fenced is None:
                return self._submit(db, j, unit, attempt, output_hash, result_ref, matches, now_us)
        raise fenced

    def _submit(
        self,
        db: sqlite3.Connection,
        j: JobRow,
        unit: int,
        attempt: int,
        output_hash: str,
        result_ref: str,
        matches: str | None,
        now_us: int,
    ) -> Commit:
        allowed = set(reads_.candidates(db, j, unit, attempt))
        group = matches if matches in allowed else output_hash
        (probe,) = db.execute(
            "SELECT probe FROM attempts WHERE job = ? AND unit = ? AND attempt = ?", (j.id, unit, attempt)
        ).fetchone()
        if probe:  # looks like any other result waiting for a quorum
            units_.check(
                db,
                j,
                unit,
                attempt,
                output_hash=output_hash,
                result_ref=result_ref,
                group=group,
                now_us=now_us,
            )
            return Commit(
                commit_id(j.key, unit, output_hash), duplicate=False, committed=False, output_hash=output_hash
            )
        winner = units_.submit(
            db, j, unit, attempt, output_hash=output_hash, result_ref=result_ref, group=group, now_us=now_us
        )
        return Commit(
            commit_id(j.key, unit, group), duplicate=False, committed=winner is not None, output_hash=group
        )

    def candidates(self, job: str, unit: int, attempt: int) -> list[str]:
        with self._tx() as db:
            j = self._job(db, job)
            reads_.attempt(db, j, unit, attempt)
            return reads_.candidates(db, j, unit, attempt)

    def standings(self, since: int = 0) -> tuple[int, list[Standing]]:
        with self._tx() as db:
            return trust_.standings(db, since)

    def quarantine(self, car: str, *, reason: str, now: datetime) -> bool:
        now_us = to_us(now)
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO cars (car, owner) VALUES (?, '')", (car,))
            return units_.quarantine(db, car, reason, now_us=now_us)

    def _check_live(
        self, db: sqlite3.Connection, j: JobRow, unit: int, attempt: int, *, car: str, now_us: int
    ) -> Fenced | None:
        """None if the attempt may act now; otherwise why not. An overdue attempt is expired here
        (the caller's transaction commits that before raising)."""
        status, holder, deadline_us, _ = reads_.attempt(db, j, unit, attempt)
        reason = None
        if holder != car:
            reason = "attempt belongs to another car"
        elif status != LIVE:
            reason = WHY_NOT_LIVE.get(status, status)
        elif now_us >= deadline_us:
            units_.end(db, j, unit, attempt, status=EXPIRED, charge=True, now_us=now_us)
            reason = WHY_NOT_LIVE[EXPIRED]
        return None if reason is None else Fenced(job=j.key, unit=unit, attempt=attempt, reason=reason)

    def fence_car(
        self, job: str | None, car: str, *, now: datetime, charge: bool = False
    ) -> list[EndedAttempt]:
        now_us = to_us(now)  # a charged fence may bench the car from now on
        with self._tx() as db:
            where, args = ("", (car,)) if job is None else (" AND job = ?", (car, self._job(db, job).id))
            found = db.execute(
                f"SELECT job, unit, attempt FROM attempts INDEXED BY attempts_live_car"
                f" WHERE status = 'live' AND car = ?{where}",
                args,
            ).fetchall()
            return self._end_all(db, found, status=FENCED, charge=charge, departure=True, now_us=now_us)

    def expire(self, now: datetime) -> list[EndedAttempt]:
        now_us = to_us(now)
        with self._tx() as db:
            found = db.execute(
                "SELECT job, unit, attempt FROM attempts INDEXED BY attempts_live_due"
                " WHERE status = 'live' AND deadline_us <= ?",
                (now_us,),
            ).fetchall()
            return self._end_all(db, found, status=EXPIRED, charge=True, departure=False, now_us=now_us)

    def _end_all(
        self,
        db: sqlite3.Connection,
        found: list[tuple[int, int, int]],
        *,
        status: str,
        charge: bool,
        departure: bool,
        now_us: int,
    ) -> list[EndedAttempt]:
        keys = dict(db.execute("SELECT id, key FROM jobs").fetchall()) if found else {}
        ended = []
        for job_id, unit, attempt in sorted(found):
            j = self._job(db, keys[job_id])
            car = units_.end(db, j, unit, attempt, status=status, charge=charge, now_us=now_us)
            ended.append(EndedAttempt(j.key, unit, attempt, car))
        for job_id in {job_id for job_id, _, _ in found} if departure else ():
            db.execute("UPDATE jobs SET departures = departures + 1 WHERE id = ?", (job_id,))
        return ended

    # -- reading ------------------------------------------------------------------------------
    def summary(self, job: str) -> Summary:
        with self._tx() as db:
            return reads_.summary(db, self._job(db, job))

    def live(self, job: str) -> list[LiveAttempt]:
        with self._tx() as db:
            return reads_.live(db, self._job(db, job))

    def results(self, job: str) -> list[CommittedUnit]:
        with self._tx() as db:
            return reads_.results(db, self._job(db, job))

    def revoked(self) -> list[Revoked]:
        with self._tx() as db:
            return reads_.revoked(db)

    def unpublished(self, gone: Sequence[Revoked]) -> None:
        with self._tx() as db:
            trust_.unpublished(db, [(r.job, r.unit, r.output_hash) for r in gone])

    def verify(self) -> list[str]:
        with self._tx() as db:
            return problems(db)
