"""What one car may cost a job, and what a car cannot foresee, inside one SQLite ledger transaction.

Why this exists: every request from a car is hostile (``docs/trust.md``). Three things a car
could once do through the dispatcher's API alone, and the ledger's answer to each:

- **Fail a job on its own** by leasing a unit and releasing it with an error, again and again.
  A charged failure (a release with an error, a deadline that passed, a departure under
  ``FailAttempt``) now bars that car from that unit for good (``sqlite_units.pick``), so a
  unit fails only after ``max_attempts × replicas`` distinct cars failed it. And a car with
  ``FAIL_STREAK`` charged failures in a row in a job is *benched*: it gets no new lease of
  the job for ``BENCH_TIMEOUTS`` unit timeouts (a result sent in between ends the streak).
- **Keep a unit forever** by renewing it. An attempt lives at most ``MAX_LEASE_TIMEOUTS`` unit
  timeouts from its lease: a renewal never pushes the deadline past that, and at it the
  attempt expires like any overdue one.
- **Predict the spot checks** from the job key, which its pod's owner reference shows. Every
  choice the ledger makes by chance (which units of a trusted car stay replicated, which
  leases are probes and where a probe starts) is an HMAC keyed with a secret the ledger makes
  up once, keeps in its own file (``secrets``), and never sends anywhere: stable across
  restarts, unknowable to cars.

The rules are documented in ``docs/dispatch.md`` (What one car may cost a job).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3

FAIL_STREAK = 3
"""Charged failures in a row, in one job, that bench a car."""
BENCH_TIMEOUTS = 4
"""How long a benched car waits for a new lease of the job, in the job's unit timeouts."""
MAX_LEASE_TIMEOUTS = 4
"""The longest an attempt may live, renewals included, in the job's unit timeouts."""

DRAW_SECRET = "draw"


def secret(db: sqlite3.Connection) -> str:
    """The ledger's draw secret: 32 random bytes (hex), made the first time it is asked for."""
    db.execute(
        "INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", (DRAW_SECRET, secrets.token_hex(32))
    )
    (value,) = db.execute("SELECT value FROM secrets WHERE name = ?", (DRAW_SECRET,)).fetchone()
    return str(value)


def draw(key: str, *parts: object) -> int:
    """A number in 0..99, a fixed function of ``parts`` and the secret ``key``: the same after a
    restart, but nobody without the key can tell which way it falls."""
    if len(key) != 64:  # an empty or short key would make the choice predictable again
        raise ValueError("the ledger's draw secret is missing or malformed")
    mac = hmac.new(bytes.fromhex(key), "\n".join(map(str, parts)).encode(), hashlib.sha256).digest()
    return int.from_bytes(mac[:4], "big") % 100


def renew(
    db: sqlite3.Connection, job_id: int, unit: int, attempt: int, *, now_us: int, timeout_us: int
) -> int | None:
    """Renew a live attempt at ``now_us``: its deadline becomes a unit timeout from now, but never
    more than ``MAX_LEASE_TIMEOUTS`` of them after it was issued. Returns the deadline, or None
    (nothing changed) when the attempt already lived that long: the caller expires it."""
    (issued_us,) = db.execute(
        "SELECT issued_us FROM attempts WHERE job = ? AND unit = ? AND attempt = ?", (job_id, unit, attempt)
    ).fetchone()
    deadline_us = min(now_us + timeout_us, int(issued_us) + MAX_LEASE_TIMEOUTS * timeout_us)
    if deadline_us <= now_us:
        return None
    db.execute(
        "UPDATE attempts SET deadline_us = ? WHERE job = ? AND unit = ? AND attempt = ?",
        (deadline_us, job_id, unit, attempt),
    )
    return deadline_us


def benched(db: sqlite3.Connection, job_id: int, car: str, now_us: int) -> bool:
    """Whether the car may not start a new attempt of the job now."""
    row = db.execute("SELECT until_us FROM benched WHERE job = ? AND car = ?", (job_id, car)).fetchone()
    return row is not None and now_us < row[0]


def strike(db: sqlite3.Connection, job_id: int, car: str, *, now_us: int, timeout_us: int) -> None:
    """Count one charged failure of the car in the job; the ``FAIL_STREAK``-th in a row benches it
    (and starts a new streak)."""
    db.execute(
        "INSERT INTO benched (job, car, streak) VALUES (?, ?, 1)"
        " ON CONFLICT (job, car) DO UPDATE SET streak = streak + 1",
        (job_id, car),
    )
    db.execute(
        "UPDATE benched SET streak = 0, until_us = ? WHERE job = ? AND car = ? AND streak >= ?",
        (now_us + BENCH_TIMEOUTS * timeout_us, job_id, car, FAIL_STREAK),
    )


def clear(db: sqlite3.Connection, job_id: int, car: str) -> None:
    """The car sent a result: its failures are no longer in a row."""
    db.execute("UPDATE benched SET streak = 0 WHERE job = ? AND car = ?", (job_id, car))
