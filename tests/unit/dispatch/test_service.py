"""What the operator's loops ask the dispatcher (``dispatch.service.LedgerService``): each is one
async call on the ledger's thread, so no loop touches the ledger itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

from curbside_operator.dispatch import results
from curbside_operator.dispatch.service import LedgerService
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from tests.support.dispatcher import spec
from tests.support.ledger import T0, at


def test_the_operators_ledger_calls_run_through_the_service(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db", durable=False)
    store = results.FolderResultStore(tmp_path / "results", fsync=False)
    service = LedgerService(ledger, stores=lambda uri: store)

    async def scenario() -> None:
        key = await service.register("demo", "seti", "uid-1", spec())
        assert key == "demo/seti/uid-1"
        assert service.served("demo", "seti")
        other = await service.register("demo", "other", "uid-2", spec())
        service.unregister_job("demo", "other")
        first = ledger.lease(key, car="a", owner="x", now=T0)
        second = ledger.lease(key, car="b", owner="y", now=T0)
        assert first is not None
        assert second is not None

        summaries = await service.summaries([key, other])
        assert list(summaries) == [key]  # only jobs being served
        assert summaries[key].cars_in_use == frozenset({"a", "b"})

        fenced = await service.fence(key, ["a"], now=at(1), charge=False)
        assert [(e.car, e.unit) for e in fenced] == [("a", first.unit)]
        expired = await service.expire(at(3600))
        assert [(e.car, e.unit) for e in expired] == [("b", second.unit)]
        ledger.quarantine("a", reason="outvoted", now=at(3600))
        seq, standings = await service.standings(0)
        assert [(s.car, s.quarantine) for s in standings] == [("a", "outvoted")]
        assert await service.standings(seq) == (seq, [])

        await service.forget("demo", "seti", key, now=at(3601))
        assert not service.served("demo", "seti")
        assert key not in ledger.jobs()

    try:
        asyncio.run(scenario())
    finally:
        service.close()
        assert ledger.verify() == []
        ledger.close()
