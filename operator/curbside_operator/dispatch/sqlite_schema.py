"""The SQLite ledger's tables, what their values mean, and the invariants that tie them together.

Why this exists: ``SqliteLedger`` keeps caches next to the truth (a unit's ``state`` and
``open_slots``, the job's counters) so that leasing and summarising never scan a job. Caches
can lie; the attempts table cannot, because every attempt row is written once when issued
and then only changes status. ``problems`` recomputes everything from the attempts and
reports each disagreement in words. The operator can run it at start-up, and the tests run
it after every step and after a SIGKILL.

Tables:

- ``jobs``: settings, the ``cursor`` (units at or past it were never touched and are pending),
  counters by unit state, and ``issued``/``reruns``/``departures``.
- ``units``: one row per touched unit: ``state``, ``epoch`` (its highest attempt number),
  ``failures`` (attempts charged against ``max_attempts``), ``open_slots`` (how many more live
  attempts it wants now) and, once succeeded, the winning ``commit_id``/``output_hash``.
- ``attempts``: one row per attempt ever issued, with its car, owner, deadline and status;
  once it submitted, its output ``grp`` (the output it agrees with), its ``verdict`` and the
  credit it earned. ``probe`` attempts re-run an already verified unit to check the car.
- ``cars`` and ``trust``: each car's record (quarantine, credit) and its streak per model.
  ``seq`` orders changes, so the operator reads only the cars that changed.
- ``benched``: per job and car, its charged failures in a row and until when it gets no new
  lease of the job (``sqlite_limits``). An attempt's ``charged`` says it used up one of its
  unit's attempts; a car is charged at most once per unit.
- ``secrets``: values the ledger makes up once and never hands out; ``draw`` is the key that
  makes spot checks and probes unpredictable to cars (``sqlite_limits.draw``).
- ``revoked``: results taken back from a quarantined car (units it decided alone on trust)
  whose files the dispatcher has yet to take out of the published output; a unit that
  commits again leaves it.

Schema 2 added the trust columns and tables; schema 3 the ``charged`` column, ``benched``,
``secrets`` and ``revoked``. Older files are migrated in place on open (a schema-2 file keeps
one charge per car and unit: its last failed or expired attempt; charged departures were not
recorded, so their units get those attempts back).
"""

from __future__ import annotations

import sqlite3

from curbside_operator.dispatch.sqlite_limits import FAIL_STREAK

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, units INTEGER NOT NULL,
    timeout_us INTEGER NOT NULL, max_attempts INTEGER NOT NULL, replicas INTEGER NOT NULL,
    quorum INTEGER NOT NULL, distinct_owners INTEGER NOT NULL, cursor INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL, running INTEGER NOT NULL DEFAULT 0, succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, issued INTEGER NOT NULL DEFAULT 0,
    reruns INTEGER NOT NULL DEFAULT 0, departures INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS units (
    job INTEGER NOT NULL, unit INTEGER NOT NULL, state TEXT NOT NULL, epoch INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0, open_slots INTEGER NOT NULL DEFAULT 0,
    commit_id TEXT, output_hash TEXT, result_ref TEXT, PRIMARY KEY (job, unit)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS units_open ON units (job, unit) WHERE open_slots > 0;
CREATE INDEX IF NOT EXISTS units_state ON units (job, state, unit);
CREATE TABLE IF NOT EXISTS attempts (
    job INTEGER NOT NULL, unit INTEGER NOT NULL, attempt INTEGER NOT NULL, car TEXT NOT NULL,
    owner TEXT NOT NULL, status TEXT NOT NULL, deadline_us INTEGER NOT NULL, output_hash TEXT,
    result_ref TEXT, PRIMARY KEY (job, unit, attempt)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attempts_live_job ON attempts (job, deadline_us) WHERE status = 'live';
CREATE INDEX IF NOT EXISTS attempts_live_car ON attempts (car, job, unit) WHERE status = 'live';
CREATE INDEX IF NOT EXISTS attempts_live_due ON attempts (deadline_us) WHERE status = 'live'
"""
MIGRATIONS: dict[int, list[str]] = {
    2: [
        "ALTER TABLE jobs ADD COLUMN validation TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE jobs ADD COLUMN results INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN verified INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE units ADD COLUMN target INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE units ADD COLUMN need INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE units ADD COLUMN hw TEXT",
        "ALTER TABLE units ADD COLUMN verified INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE units ADD COLUMN decided_us INTEGER",
        "ALTER TABLE attempts ADD COLUMN hw TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE attempts ADD COLUMN probe INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE attempts ADD COLUMN grp TEXT",
        "ALTER TABLE attempts ADD COLUMN verdict TEXT",
        "ALTER TABLE attempts ADD COLUMN issued_us INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE attempts ADD COLUMN done_us INTEGER",
        "ALTER TABLE attempts ADD COLUMN speed REAL NOT NULL DEFAULT 1",
        "ALTER TABLE attempts ADD COLUMN watts REAL NOT NULL DEFAULT 0",
        "ALTER TABLE attempts ADD COLUMN credit_s REAL NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS attempts_car ON attempts (car, status)",
        "CREATE INDEX IF NOT EXISTS units_verified ON units (job, hw, unit) WHERE verified = 1",
        """CREATE TABLE IF NOT EXISTS cars (car TEXT PRIMARY KEY, owner TEXT NOT NULL,
            valid INTEGER NOT NULL DEFAULT 0, invalid INTEGER NOT NULL DEFAULT 0,
            credit_s REAL NOT NULL DEFAULT 0, joules REAL NOT NULL DEFAULT 0, quarantine TEXT,
            seq INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS cars_seq ON cars (seq)",
        """CREATE TABLE IF NOT EXISTS trust (car TEXT NOT NULL, model TEXT NOT NULL,
            streak INTEGER NOT NULL DEFAULT 0, trusted INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (car, model)) WITHOUT ROWID""",
        "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    ],
    3: [
        "ALTER TABLE attempts ADD COLUMN charged INTEGER NOT NULL DEFAULT 0",
        """UPDATE attempts SET charged = 1 WHERE status IN ('failed', 'expired') AND NOT probe
            AND NOT EXISTS (SELECT 1 FROM attempts b WHERE b.job = attempts.job AND b.unit = attempts.unit
            AND b.car = attempts.car AND b.attempt > attempts.attempt AND NOT b.probe)""",
        """UPDATE units SET failures = (SELECT count(*) FROM attempts a WHERE a.job = units.job
            AND a.unit = units.unit AND a.charged AND NOT a.probe)""",
        """CREATE TABLE IF NOT EXISTS benched (job INTEGER NOT NULL, car TEXT NOT NULL,
            streak INTEGER NOT NULL DEFAULT 0, until_us INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (job, car)) WITHOUT ROWID""",
        "CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        """CREATE TABLE IF NOT EXISTS revoked (job INTEGER NOT NULL, unit INTEGER NOT NULL,
            output_hash TEXT NOT NULL, PRIMARY KEY (job, unit)) WITHOUT ROWID""",
    ],
}
"""Statements that take a file from the schema before the key to that schema."""


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a ledger at ``version`` (0: empty) to ``SCHEMA_VERSION``, in the caller's transaction."""
    if version not in (0, *range(1, SCHEMA_VERSION + 1)):
        raise ValueError(f"ledger schema {version}; this code knows up to {SCHEMA_VERSION}")
    for statement in SCHEMA.split(";") if version == 0 else ():
        db.execute(statement)
    for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[target]:
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


# Attempt statuses. Only LIVE may act. SUBMITTED handed in a result that waits for a quorum;
# COMMITTED is part of the unit's accepted result; REJECTED lost the vote.
LIVE, SUBMITTED, COMMITTED, REJECTED = "live", "submitted", "committed", "rejected"
CHECKED = "checked"
"""A probe's result, compared with the unit's known answer (its ``verdict`` says how it went)."""
VALID, INVALID, ON_TRUST, INCONCLUSIVE = "valid", "invalid", "on-trust", "inconclusive"
"""Verdicts: agreed with a quorum (or a probe's known answer); outvoted (or missed it); accepted
alone from a trusted car (unverified, revoked if the car is caught later); or the unit ran out
of results without a quorum."""
RELEASED, FENCED, EXPIRED, ERRORED, SUPERSEDED = "released", "fenced", "expired", "failed", "superseded"
WASTED = frozenset({RELEASED, FENCED, EXPIRED, ERRORED})
"""Ended without a result, so the unit runs again: these count as re-runs (SUPERSEDED does not:
the unit was decided, nothing runs again)."""
WHY_NOT_LIVE = {
    RELEASED: "attempt was released",
    FENCED: "attempt was fenced: its car left or went silent",
    EXPIRED: "attempt expired: its deadline passed",
    ERRORED: "attempt was given up with an error",
    SUPERSEDED: "unit was decided without this attempt",
    REJECTED: "output lost the quorum vote",
    CHECKED: "attempt already sent its output",
}

# Unit states. They also name the job row's counter columns.
PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"

_CHECKS: list[tuple[str, str]] = [
    (
        "job {0}: counters pending/running/succeeded/failed {1} != recounted {2}",
        """SELECT j.key, j.pending || '/' || j.running || '/' || j.succeeded || '/' || j.failed,
                  (j.units - j.cursor + coalesce(sum(u.state = 'pending'), 0)) || '/'
                  || coalesce(sum(u.state = 'running'), 0) || '/' || coalesce(sum(u.state = 'succeeded'), 0)
                  || '/' || coalesce(sum(u.state = 'failed'), 0) AS recount
           FROM jobs j LEFT JOIN units u ON u.job = j.id GROUP BY j.id
           HAVING j.pending || '/' || j.running || '/' || j.succeeded || '/' || j.failed != recount""",
    ),
    (
        "job {0}: issued {1} attempts but {2} are recorded",
        """SELECT j.key, j.issued, (SELECT count(*) FROM attempts a WHERE a.job = j.id) AS n
           FROM jobs j WHERE j.issued != n""",
    ),
    (
        "job {0}: unit {1} lies outside the touched range (cursor {2})",
        "SELECT j.key, u.unit, j.cursor FROM units u JOIN jobs j ON j.id = u.job"
        " WHERE u.unit < 0 OR u.unit >= j.cursor OR j.cursor > j.units",
    ),
    (
        "job {0}: unit {1} has epoch {2} but attempts numbered {3}",
        """SELECT j.key, u.unit, u.epoch, coalesce(group_concat(a.attempt), '') FROM units u
           JOIN jobs j ON j.id = u.job LEFT JOIN attempts a ON a.job = u.job AND a.unit = u.unit
           GROUP BY u.job, u.unit
           HAVING count(a.attempt) != u.epoch OR coalesce(max(a.attempt), 0) != u.epoch""",
    ),
    (
        "job {0}: unit {1} has an attempt on no unit row",
        "SELECT j.key, a.unit FROM attempts a JOIN jobs j ON j.id = a.job"
        " WHERE NOT EXISTS (SELECT 1 FROM units u WHERE u.job = a.job AND u.unit = a.unit)",
    ),
    (
        "job {0}: unit {1} is {2} with {3} live and {4} committed attempts",
        """SELECT j.key, u.unit, u.state, coalesce(sum(a.status = 'live' AND NOT a.probe), 0) AS live,
                  coalesce(sum(a.status = 'committed'), 0) AS won,
                  coalesce(sum(a.status = 'submitted'), 0) AS sub
           FROM units u JOIN jobs j ON j.id = u.job LEFT JOIN attempts a ON a.job = u.job AND a.unit = u.unit
           GROUP BY u.job, u.unit
           HAVING (u.state = 'running' AND live = 0) OR (u.state = 'pending' AND live > 0)
             OR (u.state IN ('succeeded', 'failed') AND live + sub > 0)
             OR (u.state = 'succeeded' AND won < coalesce(nullif(u.need, 0), j.quorum))
             OR (u.state != 'succeeded' AND won > 0)""",
    ),
    (
        "job {0}: unit {1} committed {2} but has committed attempts with other outputs",
        """SELECT j.key, u.unit, u.output_hash FROM units u JOIN jobs j ON j.id = u.job
           WHERE u.state = 'succeeded' AND (u.commit_id IS NULL OR EXISTS (SELECT 1 FROM attempts a
             WHERE a.job = u.job AND a.unit = u.unit AND a.status = 'committed'
             AND coalesce(a.grp, a.output_hash) != u.output_hash))""",
    ),
    (
        "job {0}: unit {1} has probe attempt {2} but is {3} (probes re-run succeeded units only)",
        """SELECT j.key, a.unit, a.attempt, u.state FROM attempts a JOIN jobs j ON j.id = a.job
           JOIN units u ON u.job = a.job AND u.unit = a.unit
           WHERE a.probe AND a.status = 'live' AND u.state != 'succeeded'""",
    ),
    (
        "job {0}: unit {1} has two live or submitted attempts on car {2}",
        """SELECT j.key, a.unit, a.car FROM attempts a JOIN jobs j ON j.id = a.job
           WHERE a.status IN ('live', 'submitted') GROUP BY a.job, a.unit, a.car HAVING count(*) > 1""",
    ),
    (
        "job {0}: unit {1} has two live or submitted attempts of owner {2}",
        """SELECT j.key, a.unit, a.owner FROM attempts a JOIN jobs j ON j.id = a.job
           WHERE a.status IN ('live', 'submitted') AND j.distinct_owners
           GROUP BY a.job, a.unit, a.owner HAVING count(*) > 1""",
    ),
    (
        "job {0}: unit {1} is pending but wants no attempt (it would never run)",
        "SELECT j.key, u.unit FROM units u JOIN jobs j ON j.id = u.job"
        " WHERE u.state = 'pending' AND u.open_slots <= 0",
    ),
    (
        "job {0}: unit {1} has {2} failures but {3} charged attempts",
        """SELECT j.key, u.unit, u.failures, (SELECT count(*) FROM attempts a WHERE a.job = u.job
             AND a.unit = u.unit AND a.charged AND NOT a.probe) AS n
           FROM units u JOIN jobs j ON j.id = u.job WHERE u.failures != n""",
    ),
    (
        "job {0}: unit {1} was charged twice to car {2} (a failed car never gets the unit again)",
        """SELECT j.key, a.unit, a.car FROM attempts a JOIN jobs j ON j.id = a.job
           WHERE a.charged AND NOT a.probe GROUP BY a.job, a.unit, a.car HAVING count(*) > 1""",
    ),
    (
        "job {0}: unit {1} was leased to car {2} again after it failed there",
        """SELECT j.key, a.unit, a.car FROM attempts a JOIN jobs j ON j.id = a.job
           WHERE a.charged AND NOT a.probe AND EXISTS (SELECT 1 FROM attempts b WHERE b.job = a.job
             AND b.unit = a.unit AND b.car = a.car AND b.attempt > a.attempt AND NOT b.probe)""",
    ),
    (
        "car {1}: benched for job {0}, which does not exist, or with a streak of {2}",
        f"""SELECT b.job, b.car, b.streak FROM benched b WHERE b.streak NOT BETWEEN 0 AND {FAIL_STREAK - 1}
           OR NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = b.job)""",
    ),
    (
        "job id {0}: unit {1} is listed as revoked but is {2}",
        """SELECT r.job, r.unit, coalesce(u.state, 'not in the ledger') FROM revoked r
           LEFT JOIN units u ON u.job = r.job AND u.unit = r.unit
           WHERE u.state IS NULL OR u.state = 'succeeded'""",
    ),
    (
        "the ledger's draw secret is {0} (spot checks and probes would be predictable)",
        """SELECT CASE WHEN count(*) = 0 THEN 'missing' ELSE 'malformed' END FROM secrets
           WHERE name = 'draw'
           HAVING count(*) = 0 OR max(length(value) != 64 OR value GLOB '*[^0-9a-f]*')""",
    ),
]


def problems(db: sqlite3.Connection) -> list[str]:
    """Every broken invariant, in words; empty when the ledger is consistent."""
    (check,) = db.execute("PRAGMA quick_check").fetchone()
    found = [] if check == "ok" else [f"sqlite quick_check: {check}"]
    for message, query in _CHECKS:
        found.extend(message.format(*row) for row in db.execute(query).fetchall())
    return found
