"""A work queue of object keys, as client-go's: each key waits at most once, one worker at a time.

Why this exists: a loop that started one task per car to look at, each task judging its car
at once and then waiting for a write slot, would write stale judgements. When 10,000 cars
enroll at once (the full bench, an operator restart on a big fleet), 10,000 such tasks wait
minutes for their slot and then write judgements minutes old: a car that reported Charging
meanwhile is written Offline, looked at again, and queued behind everyone once more, and
none becomes eligible in 15 minutes.

With this queue a fixed set of workers takes keys in order, and the worker judges its car when
it takes it, from what the operator holds *then*. A key added again while it waits is not
queued twice (the wait costs nothing more and the later look sees the newer facts), and a key
added while a worker has it is queued again when that worker is done, so no change is lost and
no car is written by two workers at once. Keys come in two priorities: ``urgent`` (something
about the car changed) goes before ``later`` (the periodic sweep), so a sweep of 10,000
unchanged cars never delays a car that just drove away.
"""

from __future__ import annotations

import asyncio


class WorkQueue:
    """Keys to look at, deduplicated, urgent ones first; see the module docstring."""

    def __init__(self) -> None:
        self._urgent: dict[str, None] = {}  # dicts keep insertion order: first come, first taken
        self._later: dict[str, None] = {}
        self._busy: set[str] = set()
        self._again: dict[str, bool] = {}  # busy keys added meanwhile, and whether urgently
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, key: str, *, urgent: bool = True) -> None:
        """Queue ``key`` unless it already waits (an urgent add moves it ahead of the sweep)."""
        if key in self._busy:
            self._again[key] = urgent or self._again.get(key, False)
        elif urgent:
            self._later.pop(key, None)
            self._urgent[key] = None
        elif key not in self._urgent:
            self._later[key] = None
        else:
            return
        self._idle.clear()
        self._ready.set()

    async def get(self) -> str:
        """The next key (urgent ones first); the caller must call ``done(key)`` afterwards."""
        while not (self._urgent or self._later):
            self._ready.clear()
            await self._ready.wait()
        pending = self._urgent if self._urgent else self._later
        key = next(iter(pending))
        del pending[key]
        self._busy.add(key)
        return key

    def done(self, key: str) -> None:
        """The worker is finished with ``key``: queue it again if it was added meanwhile."""
        self._busy.discard(key)
        if key in self._again:
            self.add(key, urgent=self._again.pop(key))
        elif not (self._urgent or self._later or self._busy):
            self._idle.set()

    async def join(self) -> None:
        """Wait until nothing waits and no worker holds a key (tests and shutdown)."""
        await self._idle.wait()

    def waiting(self) -> tuple[int, int]:
        """How many keys wait: ``(urgent, later)``."""
        return len(self._urgent), len(self._later)

    def busy(self) -> frozenset[str]:
        """The keys workers hold now."""
        return frozenset(self._busy)

    def __contains__(self, key: object) -> bool:
        return key in self._urgent or key in self._later or key in self._busy
