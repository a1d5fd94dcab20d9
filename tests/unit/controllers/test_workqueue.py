"""The fleet's work queue: each key once, urgent before the sweep, nothing lost while busy."""

from __future__ import annotations

import asyncio

import pytest

from curbside_operator.controllers.workqueue import WorkQueue


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def take(q: WorkQueue, n: int) -> list[str]:
    out = []
    for _ in range(n):
        out.append(await q.get())
    return out


def test_a_key_added_twice_waits_once() -> None:
    async def go() -> None:
        q = WorkQueue()
        for key in ("a", "b", "a", "a"):
            q.add(key)
        assert q.waiting() == (2, 0)
        assert await take(q, 2) == ["a", "b"]

    run(go())


def test_changed_keys_go_before_the_sweep_and_an_urgent_add_promotes_a_swept_key() -> None:
    async def go() -> None:
        q = WorkQueue()
        for key in ("s1", "s2", "s3"):
            q.add(key, urgent=False)
        q.add("c1")
        q.add("s3")  # changed while waiting for the sweep: it moves ahead
        q.add("c1", urgent=False)  # a sweep never demotes a changed key
        assert q.waiting() == (2, 2)
        assert await take(q, 4) == ["c1", "s3", "s1", "s2"]

    run(go())


def test_a_key_added_while_busy_is_queued_again_when_done_not_given_to_a_second_worker() -> None:
    async def go() -> None:
        q = WorkQueue()
        q.add("a")
        assert await q.get() == "a"
        q.add("a", urgent=False)
        q.add("a")  # urgent wins over the earlier sweep add
        assert q.waiting() == (0, 0)  # not takeable while a worker holds it
        assert "a" in q
        assert q.busy() == {"a"}
        q.done("a")
        assert q.waiting() == (1, 0)
        assert await q.get() == "a"

    run(go())


def test_get_waits_for_an_add() -> None:
    async def go() -> None:
        q = WorkQueue()
        getter = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        assert not getter.done()
        q.add("late")
        assert await asyncio.wait_for(getter, 1) == "late"

    run(go())


def test_two_waiting_workers_get_different_keys() -> None:
    async def go() -> None:
        q = WorkQueue()
        first, second = asyncio.create_task(q.get()), asyncio.create_task(q.get())
        await asyncio.sleep(0)
        q.add("a")
        q.add("b")
        assert sorted(await asyncio.wait_for(asyncio.gather(first, second), 1)) == ["a", "b"]

    run(go())


@pytest.mark.parametrize("again", [False, True])
def test_join_waits_until_nothing_waits_or_is_busy(again: bool) -> None:
    async def go() -> None:
        q = WorkQueue()
        await asyncio.wait_for(q.join(), 1)  # empty: returns at once
        q.add("a")
        joined = asyncio.create_task(q.join())
        key = await q.get()
        await asyncio.sleep(0)
        assert not joined.done()
        if again:
            q.add(key)
            q.done(key)
            await asyncio.sleep(0)
            assert not joined.done()  # queued again: not idle yet
            key = await q.get()
        q.done(key)
        await asyncio.wait_for(joined, 1)

    run(go())
