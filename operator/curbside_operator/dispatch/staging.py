"""What each car may keep in the result stores' staging folders, and what gets swept out.

Why this exists: a result is staged to disk before the ledger decides on it
(``results.py``), and staged files of results that wait for a quorum stay there until their
unit is decided. Left alone, that lets any car fill the operator's disk: so the dispatcher
stages only for an attempt the car holds live (``server.py`` checks that first), charges every
staged file to the car that sent it, refuses a car over its quota (``QuotaExceeded``, HTTP
429), removes a staged file as soon as no submission needs it (a refused or merely matching
result), and at registration sweeps whatever no submission in the ledger needs (a crash's
leftovers). Files being staged right now are marked in use so neither removal touches them.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from curbside_operator.dispatch import results
from curbside_operator.dispatch.ledger import Fenced, Ledger, UnknownUnit

MAX_FILES_PER_CAR = 32
"""Staged files one car may have waiting at once (results waiting for a quorum, or in flight)."""
MAX_BYTES_PER_CAR = 64 * 1024 * 1024
"""Staged bytes one car may have waiting at once."""

Staged = tuple[str, str, int, str]
"""A staged file: (namespace, job name, unit, output hash)."""


class QuotaExceeded(Exception):
    """The car has too much staged already; ``retry_after`` seconds is a fair wait."""

    retry_after = 60


class StagingQuota:
    """Staged files per car, and the files in use by a request in flight (thread-safe: staging
    runs on the staging pool, decisions on the ledger's thread)."""

    def __init__(self, *, max_files: int = MAX_FILES_PER_CAR, max_bytes: int = MAX_BYTES_PER_CAR) -> None:
        self.max_files, self.max_bytes = max_files, max_bytes
        self._lock = threading.Lock()
        self._cars: dict[str, dict[Staged, int]] = collections.defaultdict(dict)
        self._busy: collections.Counter[Staged] = collections.Counter()

    def reserve(self, car: str, staged: Staged, size: int, *, exists: Callable[[Staged], bool]) -> None:
        """Charge ``size`` bytes of ``staged`` to ``car`` and mark it in use, or raise
        ``QuotaExceeded``. Files that are gone (published, removed) are no longer charged."""
        with self._lock:
            held = self._cars[car]
            for gone in [s for s in held if s != staged and s not in self._busy and not exists(s)]:
                del held[gone]
            others = {s: n for s, n in held.items() if s != staged}
            if len(others) + 1 > self.max_files or sum(others.values()) + size > self.max_bytes:
                if not held:
                    del self._cars[car]
                raise QuotaExceeded(
                    f"car {car} has {len(others)} staged results ({sum(others.values())} bytes) waiting"
                    f" for a quorum: at most {self.max_files} files and {self.max_bytes} bytes"
                )
            held[staged] = size
            self._busy[staged] += 1

    def done(self, car: str, staged: Staged, *, kept: bool) -> None:
        """The request that reserved ``staged`` is over; ``kept``: the file stays charged."""
        with self._lock:
            self._busy[staged] -= 1
            if self._busy[staged] <= 0:
                del self._busy[staged]
            if not kept:
                self._cars.get(car, {}).pop(staged, None)
            if car in self._cars and not self._cars[car]:
                del self._cars[car]

    def in_use(self, staged: Staged) -> int:
        """How many requests in flight use ``staged``."""
        with self._lock:
            return self._busy[staged]

    def charged(self, car: str) -> tuple[int, int]:
        """(files, bytes) charged to ``car`` now."""
        with self._lock:
            held = self._cars.get(car, {})
            return len(held), sum(held.values())


def needed(ledger: Ledger, key: str, unit: int, digest: str, attempt: int = 1) -> bool:
    """Whether a submission in the ledger may still need the staged output ``digest`` of
    ``unit``: it is the group of a result waiting for a quorum (``Ledger.candidates``; attempt 1
    of a unit is never a probe, so its candidates are the unit's waiting groups)."""
    try:
        return digest in ledger.candidates(key, unit, attempt)
    except (Fenced, UnknownUnit):  # no such attempt, or unit: nothing of it waits
        return False


def sweep(
    ledger: Ledger, store: results.ResultStore, key: str, namespace: str, name: str, quota: StagingQuota
) -> int:
    """Remove the job's staged files that nothing needs (run after committed results were
    published); how many went. A file in use by a request in flight stays."""
    removed = 0
    for unit, digest, _ in store.staged(namespace, name):
        if quota.in_use((namespace, name, unit, digest)) or needed(ledger, key, unit, digest):
            continue
        store.unstage(namespace, name, unit, output_hash=digest)
        removed += 1
    return removed
