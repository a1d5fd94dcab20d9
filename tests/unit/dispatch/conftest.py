"""Fixtures for the dispatcher's tests: a ledger on a real file (the clock origin and job key
they share are in ``tests.support.ledger``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from curbside_operator.dispatch.sqlite_ledger import SqliteLedger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    """A file-backed ledger (no fsync: these tests are about logic, not power cuts); checked
    for consistency after every test."""
    book = SqliteLedger(tmp_path / "ledger.db", durable=False)
    yield book
    assert book.verify() == []
    book.close()
