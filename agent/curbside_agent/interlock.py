"""The car's safety interlock: when the car leaves Park, local work stops before anyone is told.

Why this module exists: the owner driving off must stop compute on the car within
milliseconds, whatever the network or the control plane are doing. Eviction
from the control plane takes minutes and needs a network; the interlock needs neither. Its one
rule is an ordering: **stop first, report second.** ``enforce`` delivers the stop to every
registered worker (SIGTERM to processes, stop callbacks for everything else), records that,
and only then lets the ``Driving`` report go out. Both moments land on a ``Timeline`` so tests
(and the cluster acceptance test) can check ``stop_delivered < report_sent``.

What "stop delivered" means: the kernel has queued SIGTERM for the process (or the callback
has returned). Queued is not yet *received*: the worker may not have run since. So a report
first waits, up to ``ack_seconds`` from the stop (default 0.25 s), for every worker stopped
before it to exit: a worker that honours SIGTERM (stop, release its unit, exit) is provably
stopped before the cluster hears ``Driving``; one that does not is reported anyway once
``ack_seconds`` have passed, because the cluster must learn within a second that the car is
gone, and it is killed after ``grace_seconds``. Escalation runs beside the report: each
process gets ``grace_seconds`` to exit, then SIGKILL.

Processes are held by a pidfd (Linux 5.3+), not a bare pid: signalling a pidfd can never hit
an unrelated process that reused the number, and the pidfd becomes readable when the process
exits, so waiting for exit needs no polling. The interlock never reaps: whoever started a
process waits for it.

While engaged (from a stop until ``release``: while the car is not parked, or the owner's
policy says no) any newly registered worker is stopped at once. Outside an event loop there
is no grace period to wait for, so escalation then kills at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

from curbside_agent import metrics

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic`` in production, a fake in tests)."""

TIMELINE_LENGTH = 512

STOP_DELIVERED = "stop_delivered"
REPORT_SENT = "report_sent"
EXITED = "exited"
KILLED = "killed"


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One thing the interlock did, when (by its clock), and to which target."""

    kind: str
    target: str
    at: float


@dataclasses.dataclass
class Timeline:
    """The interlock's recent record, in order: the evidence that stops precede reports.

    Bounded (the last ``TIMELINE_LENGTH`` events), because an agent runs for months.
    """

    events: collections.deque[Event] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=TIMELINE_LENGTH)
    )

    def record(self, kind: str, *, target: str, at: float) -> None:
        self.events.append(Event(kind=kind, target=target, at=at))

    def of(self, kind: str) -> list[Event]:
        return [event for event in self.events if event.kind == kind]


class StopTarget(Protocol):
    """Something running local work that the interlock can stop."""

    @property
    def name(self) -> str: ...

    def terminate(self) -> None:
        """Ask it to stop now (must not block)."""

    def kill(self) -> None:
        """Force it to stop (after the grace period)."""

    async def wait_exited(self, timeout: float) -> bool:
        """Whether it has stopped within ``timeout`` seconds."""
        ...


class ProcessTarget:
    """A worker process, held by pidfd. Gone already counts as stopped."""

    def __init__(self, pid: int, *, name: str | None = None) -> None:
        self.pid = pid
        self._name = name or f"pid-{pid}"
        self._exited: asyncio.Future[None] | None = None
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            self._fd = None

    @property
    def name(self) -> str:
        return self._name

    def _send(self, sig: signal.Signals) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._fd, sig)

    def terminate(self) -> None:
        self._send(signal.SIGTERM)

    def kill(self) -> None:
        self._send(signal.SIGKILL)

    def _exit(self, fd: int) -> asyncio.Future[None]:
        """One future per process for its exit, shared by every waiter (one reader on the pidfd)."""
        if self._exited is None:
            loop = asyncio.get_running_loop()
            exited: asyncio.Future[None] = loop.create_future()

            def on_exit() -> None:
                loop.remove_reader(fd)
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(fd, on_exit)
            self._exited = exited
        return self._exited

    async def wait_exited(self, timeout: float) -> bool:
        if self._fd is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._exit(self._fd)), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            if self._exited is not None and not self._exited.done():
                self._exited.get_loop().remove_reader(self._fd)
                self._exited.cancel()
            os.close(self._fd)
            self._fd = None


@dataclasses.dataclass
class CallbackTarget:
    """In-process work (or a pod-deleting hook) stopped by calling ``stop``; done when it returns."""

    name: str
    stop: Callable[[], None]

    def terminate(self) -> None:
        self.stop()

    def kill(self) -> None:
        return None

    async def wait_exited(self, timeout: float) -> bool:
        return True


class Interlock:
    """Stops registered local work first, then lets the report through. See the module doc."""

    def __init__(
        self,
        *,
        clock: Clock,
        grace_seconds: float = 2.0,
        ack_seconds: float = 0.25,
        timeline: Timeline | None = None,
    ) -> None:
        self.clock = clock
        self.grace_seconds = grace_seconds
        self.ack_seconds = ack_seconds
        self.timeline = timeline if timeline is not None else Timeline()
        self.engaged = False
        self._targets: dict[str, StopTarget] = {}
        self._escalations: set[asyncio.Task[None]] = set()
        self._unconfirmed: list[tuple[StopTarget, float]] = []

    @property
    def targets(self) -> tuple[StopTarget, ...]:
        return tuple(self._targets.values())

    def register(self, target: StopTarget) -> None:
        """Watch a worker. While engaged, it is stopped at once instead."""
        if self.engaged:
            self._deliver([target])
            self._escalate([target])
            return
        self._targets[target.name] = target

    def unregister(self, name: str) -> None:
        self._targets.pop(name, None)

    def _deliver(self, targets: list[StopTarget]) -> None:
        for target in targets:
            target.terminate()
            at = self.clock()
            self.timeline.record(STOP_DELIVERED, target=target.name, at=at)
            self._unconfirmed.append((target, at + self.ack_seconds))

    async def _confirm(self) -> None:
        """Wait until every worker stopped so far has exited, each up to its ``ack_seconds``."""
        pending, self._unconfirmed = self._unconfirmed, []
        if pending:
            await asyncio.gather(*(t.wait_exited(max(0.0, until - self.clock())) for t, until in pending))

    def _escalate(self, targets: list[StopTarget]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the agent's loop: no grace can be waited for
            for target in targets:
                target.kill()
            return
        task = loop.create_task(self._kill_after_grace(targets))
        self._escalations.add(task)
        task.add_done_callback(self._escalations.discard)

    async def _kill_after_grace(self, targets: list[StopTarget]) -> None:
        async def one(target: StopTarget) -> None:
            if not await target.wait_exited(self.grace_seconds):
                target.kill()
                metrics.INTERLOCK_KILLS.inc()
                self.timeline.record(KILLED, target=target.name, at=self.clock())
                await target.wait_exited(self.grace_seconds)
            self.timeline.record(EXITED, target=target.name, at=self.clock())

        await asyncio.gather(*(one(target) for target in targets))

    def stop_all(self, *, detected_at: float, reason: str) -> int:
        """Engage and deliver the stop to every worker now; return how many were stopped.

        ``detected_at`` is when the agent saw the reason to stop (same clock); the time from
        there to the last delivered stop is the stop latency metric. ``reason`` is the
        ``IneligibleReason`` value that caused it (``NotParked`` when the car drives off).
        """
        self.engaged = True
        targets = list(self._targets.values())
        self._targets.clear()
        self._deliver(targets)
        metrics.INTERLOCK_STOPS.labels(reason=reason).inc()
        metrics.INTERLOCK_STOP_LATENCY.observe(max(0.0, self.clock() - detected_at))
        if targets:
            self._escalate(targets)
        return len(targets)

    async def report(self, send: Callable[[], Awaitable[None]]) -> None:
        """Send a report once every stop before it is confirmed (or ``ack_seconds`` passed),
        recording the moment on the timeline."""
        await self._confirm()
        self.timeline.record(REPORT_SENT, target="", at=self.clock())
        await send()

    async def enforce(self, send: Callable[[], Awaitable[None]], *, detected_at: float, reason: str) -> None:
        """Stop all local work, then (and only then) send the report."""
        self.stop_all(detected_at=detected_at, reason=reason)
        await self.report(send)

    def release(self) -> None:
        """The car is parked again: new work may be registered and run."""
        self.engaged = False

    async def settle(self) -> None:
        """Wait until every escalation (grace, then SIGKILL) has finished."""
        while self._escalations:
            await asyncio.gather(*tuple(self._escalations))
