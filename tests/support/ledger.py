"""The ledger's tests' fixed points: a clock origin and a job key.

Times in these tests are offsets from ``T0`` (``at(seconds)``), so a test reads as a timeline
and no test depends on the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
JOB = "demo/seti/0b7c"


def at(seconds: float) -> datetime:
    """``seconds`` after ``T0``."""
    return T0 + timedelta(seconds=seconds)
