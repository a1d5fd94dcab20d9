"""The work-unit ledger's contract: what a durable ledger must do, whatever stores it.

Why this exists: Kubernetes holds desired state and summaries, not a queue (``docs/design.md``).
The units of every job live in a ledger owned by the operator. Execution is at-least-once
(a car may drive away mid-unit, a worker may replay a submission after a lost reply), but
commitment must be exactly-once. This module states that contract once, as a ``Protocol``
and the values it returns (those the rest of the operator reads too, ``Summary``, ``Standing``
and ``CarFacts``, are in ``curbside_operator.facts``), so that ``SqliteLedger`` (the default,
a file on the operator's volume) and a PostgreSQL ledger later are interchangeable, and the
dispatcher and the operator depend only on this.

Vocabulary:

- A *job key* is ``"namespace/name/uid"``: a job re-created under the same name is a new job.
- An *attempt* is one lease of one unit to one car. Its number is the unit's *epoch*: it only
  ever grows, so any message carrying an older number is recognisably stale.
- An attempt is *live* until it is committed, released, fenced (its car left), expired (its
  deadline passed) or superseded (the unit was decided without it). A result counts only
  when it comes from a live attempt: that is the fence.
- With ``replicas > 1`` several attempts of one unit are live at once, on cars of different
  owners; each submits a result and the unit commits when ``quorum`` output hashes agree.
- Trust (``sqlite_trust``): when a quorum decides a unit, every agreeing result is *valid* and
  earns its car credit and a longer streak; every outvoted one is *invalid*, resets the streak
  and, after ``Validation.quarantine_after`` of them, quarantines the car. With ``adaptive``,
  a unit first leased to a car trusted on the job's model runs once (``spot_percent`` of them
  still run ``replicas`` times); a share of leases are *probes*, re-runs of units already
  verified, whose known answer a car must match or be quarantined at once.
- ``max_attempts`` counts attempts that failed the unit (deadline passed, the worker reported
  an error, or a departure under ``FailAttempt``), per replica. A graceful release or a
  migrated departure does not use one up: a car leaving is not the unit's fault.
- Cars are hostile (``sqlite_limits``): a car that failed a unit never gets it again, so a
  unit fails only by the failures of distinct cars; a car failing several units in a row is
  benched from the job for a while; an attempt lives at most a few unit timeouts, renewals
  included; and the ledger's chance choices (spot checks, probes) are keyed with a secret no
  car ever sees.

The clock is always a parameter (``now``); no implementation reads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from curbside_operator.facts import CarFacts, Standing, Summary


# -- errors -----------------------------------------------------------------------------------
class LedgerError(Exception):
    """Base of the ledger's own errors."""


class UnknownJob(LedgerError, LookupError):
    """The job key is not in the ledger (never added, or deleted)."""

    def __init__(self, job: str) -> None:
        self.job = job
        super().__init__(f"unknown job {job!r}")


class UnknownUnit(LedgerError, LookupError):
    """The unit index is outside ``0 .. units-1`` of the job."""

    def __init__(self, job: str, unit: int) -> None:
        self.job = job
        self.unit = unit
        super().__init__(f"job {job!r} has no unit {unit}")


class JobConflict(LedgerError, ValueError):
    """``add_job`` for a key that exists with different settings (the job is immutable)."""


class LedgerBusy(LedgerError):
    """Another process holds the ledger file: there is exactly one writer."""


class Quarantined(LedgerError):
    """The car is quarantined: it gets no work until an operator lifts it."""

    def __init__(self, car: str, reason: str) -> None:
        self.car = car
        self.reason = reason
        super().__init__(f"car {car} is quarantined: {reason}")


class Fenced(LedgerError):
    """The attempt may no longer act on its unit: stale, fenced, expired, or not this car's.

    Nothing was changed on its behalf. ``reason`` is one line for the worker's log and the
    dispatcher's 409 body.
    """

    def __init__(self, *, job: str, unit: int, attempt: int, reason: str) -> None:
        self.job = job
        self.unit = unit
        self.attempt = attempt
        self.reason = reason
        super().__init__(f"{job} unit {unit} attempt {attempt}: {reason}")


# -- values -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Validation:
    """How a job's results are checked; fixed when the job is added.

    ``model`` names what trust is earned on (``name:version``): a streak on one model says
    nothing about another. ``trust_after`` valid results in a row make a car trusted;
    ``quarantine_after`` invalid results (or one failed probe) quarantine it.
    """

    model: str = ""
    adaptive: bool = False
    trust_after: int = 10
    spot_percent: int = 5
    probe_percent: int = 0
    quarantine_after: int = 2


@dataclasses.dataclass(frozen=True)
class Lease:
    """One attempt handed to a car: work on ``unit`` as attempt ``attempt`` until ``deadline``.

    ``resumed`` is True when the car already held this attempt (a retried lease request whose
    reply was lost gets the same attempt back instead of orphaning one).
    """

    unit: int
    attempt: int
    deadline: datetime
    resumed: bool = False


@dataclasses.dataclass(frozen=True)
class Commit:
    """The answer to a submission; the same submission always gets the same answer.

    ``commit_id`` is a function of (job, unit, output hash), so every replay and every replica
    that agrees gets the same id. ``committed`` is False while a replicated unit waits for a
    quorum; the id is then the one the unit will have if this output wins.
    """

    commit_id: str
    duplicate: bool
    committed: bool = True
    output_hash: str = ""
    """The output the unit committed (or would commit), when it differs from the submission's
    own hash only within the job's tolerance."""


@dataclasses.dataclass(frozen=True)
class EndedAttempt:
    """An attempt that ``fence_car`` or ``expire`` took away from its car."""

    job: str
    unit: int
    attempt: int
    car: str


@dataclasses.dataclass(frozen=True)
class LiveAttempt:
    """An attempt a car holds now."""

    unit: int
    attempt: int
    car: str
    owner: str
    deadline: datetime


@dataclasses.dataclass(frozen=True)
class CommittedUnit:
    """A unit's one accepted result."""

    unit: int
    commit_id: str
    output_hash: str
    result_ref: str


@dataclasses.dataclass(frozen=True)
class Revoked:
    """A committed result the ledger took back (its car was quarantined): the file holding
    ``output_hash`` must leave the job's published output; the unit runs again."""

    job: str
    unit: int
    output_hash: str


def commit_id(job: str, unit: int, output_hash: str) -> str:
    """The id a unit gets when ``output_hash`` is committed for it (stable across replays)."""
    return hashlib.sha256(f"{job}\n{unit}\n{output_hash}".encode()).hexdigest()[:24]


# -- the contract -----------------------------------------------------------------------------
class Ledger(Protocol):
    """A durable ledger of work units. Every method is one atomic transaction."""

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
        """Create the job with ``units`` pending units. The same call again is a no-op; a call
        with other settings raises ``JobConflict``."""
        ...

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
        """A new attempt of the lowest-numbered unit that needs one, or None; ``Quarantined``
        for a quarantined car. ``facts`` (default: the owner, one hardware class) say who it is.

        Expired attempts of the job are fenced first. A car already holding ``per_car`` live
        attempts of the job gets its oldest one back (``resumed``). Replicas of one unit never
        go to one car, nor to one owner when the job wants distinct owners. A car never gets a
        unit it failed; a benched car (failures in a row) gets None.
        """
        ...

    def renew(self, job: str, unit: int, attempt: int, *, car: str, now: datetime) -> datetime:
        """Push the attempt's deadline to ``now + unit_timeout``, but never past its maximum
        lifetime (a few unit timeouts after its lease); ``Fenced`` if it is not live, and an
        attempt at that lifetime is expired (``Fenced`` too)."""
        ...

    def release(
        self, job: str, unit: int, attempt: int, *, car: str, now: datetime, error: str | None = None
    ) -> bool:
        """Give the unit back at once (graceful stop). With ``error`` the attempt counts as failed.

        Idempotent: False when the attempt was no longer live. ``Fenced`` only if it is another
        car's attempt.
        """
        ...

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
        """Submit the attempt's result; ``Fenced`` unless it is live (or this exact submission
        was already accepted, which returns the same answer with ``duplicate``). ``matches`` is
        the hash of an earlier output (from ``candidates``) this one equals within the job's
        tolerance; it then counts as that output."""
        ...

    def candidates(self, job: str, unit: int, attempt: int) -> list[str]:
        """The outputs a submission for this attempt is compared with: the unit's committed
        output for a probe, else the distinct outputs already submitted for the unit."""
        ...

    def standings(self, since: int = 0) -> tuple[int, list[Standing]]:
        """The cars whose record changed after change number ``since``, and the newest number."""
        ...

    def quarantine(self, car: str, *, reason: str, now: datetime) -> bool:
        """Quarantine ``car``: fence its attempts, drop its results that wait for a quorum and
        reopen the units it alone decided. False when it already was."""
        ...

    def fence_car(
        self, job: str | None, car: str, *, now: datetime, charge: bool = False
    ) -> list[EndedAttempt]:
        """End every live attempt of ``car`` (in ``job``, or in all jobs) and make their units
        leasable again, in one transaction: the old attempts are fenced before any new one can
        be issued. ``charge`` counts them against ``max_attempts`` (``FailAttempt``)."""
        ...

    def expire(self, now: datetime) -> list[EndedAttempt]:
        """End every live attempt whose deadline is not after ``now`` (they count as failed)."""
        ...

    def revoked(self) -> list[Revoked]:
        """Results taken back whose files may still be published (every job), by job and unit.
        A unit that commits again leaves this list in the same transaction."""
        ...

    def unpublished(self, gone: Sequence[Revoked]) -> None:
        """The published output no longer holds these revoked results: forget them."""
        ...

    def summary(self, job: str) -> Summary: ...

    def live(self, job: str) -> list[LiveAttempt]:
        """The job's live attempts, by unit and attempt."""
        ...

    def results(self, job: str) -> list[CommittedUnit]:
        """The job's committed units, by unit."""
        ...

    def delete_job(self, job: str) -> None:
        """Forget the job and everything about it. No-op for an unknown job."""
        ...

    def jobs(self) -> Sequence[str]: ...

    def verify(self) -> list[str]:
        """Check the ledger's invariants from scratch; an empty list when it is consistent."""
        ...

    def close(self) -> None: ...
