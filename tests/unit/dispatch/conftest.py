"""Fixtures for the dispatcher's tests: a ledger on a real file, a fixed clock origin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from curbside_operator.dispatch.sqlite_ledger import SqliteLedger

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
JOB = "demo/seti/0b7c"


def at(seconds: float) -> datetime:
    """``seconds`` after ``T0``."""
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    """A file-backed ledger (no fsync: these tests are about logic, not power cuts); checked
    for consistency after every test."""
    book = SqliteLedger(tmp_path / "ledger.db", durable=False)
    yield book
    assert book.verify() == []
    book.close()
