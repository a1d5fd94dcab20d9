"""The interlock: stop first, report second; real worker processes get SIGTERM, then SIGKILL."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from curbside_agent import interlock, metrics

# A worker that announces it is ready, then waits for signals. On SIGTERM it writes the
# file named by argv[1] and exits; with argv[2] == "stubborn" it ignores SIGTERM.
WORKER = """
import pathlib, signal, sys
out = pathlib.Path(sys.argv[1])
def on_term(signum, frame):
    out.write_text("stopped")
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[2:] == ["stubborn"] else on_term)
print("ready", flush=True)
while True:
    signal.pause()
"""


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    children: list[subprocess.Popen[str]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=5)


def _worker(children: list[subprocess.Popen[str]], out: Path, *extra: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", WORKER, str(out), *extra], stdout=subprocess.PIPE, text=True
    )
    children.append(child)
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"  # its SIGTERM handler is installed
    return child


class Ticks:
    """A fake monotonic clock that advances one tick per reading: every event gets its own time."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_stop_reaches_the_worker_before_the_report(
    tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    out = tmp_path / "stopped"
    child = _worker(spawn, out)
    guard = interlock.Interlock(clock=time.monotonic, grace_seconds=5.0)
    target = interlock.ProcessTarget(child.pid, name="worker")
    guard.register(target)
    stops_before = _sample("curbside_agent_interlock_stops_total", {"reason": "NotParked"})
    seen_at_report: list[tuple[list[str], bool]] = []

    async def report() -> None:
        seen_at_report.append(([event.kind for event in guard.timeline.events], out.exists()))

    async def scenario() -> None:
        await guard.enforce(report, detected_at=time.monotonic(), reason="NotParked")
        await guard.settle()

    asyncio.run(scenario())
    target.close()
    assert child.wait(timeout=5) == 0
    assert out.read_text() == "stopped"
    # The worker's own SIGTERM handler had run (it wrote the file) before the report went out.
    ((kinds, worker_had_stopped),) = seen_at_report
    assert worker_had_stopped
    assert kinds[0] == interlock.STOP_DELIVERED
    assert kinds[-1] == interlock.REPORT_SENT
    (stop,) = guard.timeline.of(interlock.STOP_DELIVERED)
    (sent,) = guard.timeline.of(interlock.REPORT_SENT)
    assert stop.at < sent.at
    assert len(guard.timeline.of(interlock.EXITED)) == 1
    assert guard.timeline.of(interlock.KILLED) == []
    assert _sample("curbside_agent_interlock_stops_total", {"reason": "NotParked"}) == stops_before + 1


def test_worker_that_ignores_sigterm_is_killed_after_grace(
    tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    child = _worker(spawn, tmp_path / "never", "stubborn")
    guard = interlock.Interlock(clock=time.monotonic, grace_seconds=0.2)
    guard.register(interlock.ProcessTarget(child.pid))
    kills_before = _sample("curbside_agent_interlock_kills_total")

    async def scenario() -> None:
        guard.stop_all(detected_at=time.monotonic(), reason="NotParked")
        await guard.settle()

    asyncio.run(scenario())
    assert child.wait(timeout=5) == -9
    kinds = [event.kind for event in guard.timeline.events]
    assert kinds == [interlock.STOP_DELIVERED, interlock.KILLED, interlock.EXITED]
    killed_at = guard.timeline.of(interlock.KILLED)[0].at
    assert killed_at - guard.timeline.of(interlock.STOP_DELIVERED)[0].at >= 0.2
    assert _sample("curbside_agent_interlock_kills_total") == kills_before + 1
    assert not (tmp_path / "never").exists()


def test_a_worker_that_ignores_sigterm_delays_the_report_by_the_ack_time_only(
    tmp_path: Path, spawn: list[subprocess.Popen[str]]
) -> None:
    child = _worker(spawn, tmp_path / "never", "stubborn")
    guard = interlock.Interlock(clock=time.monotonic, grace_seconds=2.0, ack_seconds=0.3)
    guard.register(interlock.ProcessTarget(child.pid))
    sent: list[float] = []

    async def report() -> None:
        sent.append(time.monotonic())

    async def scenario() -> None:
        await guard.enforce(report, detected_at=time.monotonic(), reason="NotParked")
        await guard.settle()

    asyncio.run(scenario())
    stop = guard.timeline.of(interlock.STOP_DELIVERED)[0].at
    killed = guard.timeline.of(interlock.KILLED)[0].at
    assert 0.3 <= sent[0] - stop < 1.5  # waited for the acknowledgement, not for the grace period
    assert killed - stop >= 2.0
    assert child.wait(timeout=5) == -9


def test_a_process_that_is_already_gone_counts_as_stopped() -> None:
    child = subprocess.Popen([sys.executable, "-I", "-S", "-c", "pass"])
    child.wait(timeout=5)
    target = interlock.ProcessTarget(child.pid)  # reaped: nothing to signal, nothing to wait for
    guard = interlock.Interlock(clock=Ticks(), grace_seconds=0.1)
    guard.register(target)

    async def scenario() -> None:
        guard.stop_all(detected_at=0.0, reason="NotParked")
        await guard.settle()

    asyncio.run(scenario())
    assert [event.kind for event in guard.timeline.events] == [interlock.STOP_DELIVERED, interlock.EXITED]


def test_every_callback_stops_before_the_report_and_engaged_blocks_new_work() -> None:
    order: list[str] = []
    guard = interlock.Interlock(clock=Ticks(), grace_seconds=1.0)
    for name in ("triton", "worker"):
        guard.register(interlock.CallbackTarget(name, functools.partial(order.append, f"stop {name}")))

    async def report() -> None:
        order.append("report Driving")

    async def scenario() -> None:
        await guard.enforce(report, detected_at=0.0, reason="NotParked")
        guard.register(interlock.CallbackTarget("late", lambda: order.append("stop late")))
        await guard.settle()

    asyncio.run(scenario())
    assert order == ["stop triton", "stop worker", "report Driving", "stop late"]
    assert guard.targets == ()
    assert [event.at for event in guard.timeline.of(interlock.STOP_DELIVERED)][:2] == [1.0, 2.0]

    guard.release()
    guard.register(interlock.CallbackTarget("next", lambda: order.append("stop next")))
    assert [target.name for target in guard.targets] == ["next"]
    assert order[-1] == "stop late"


def test_timeline_keeps_only_the_recent_past() -> None:
    timeline = interlock.Timeline()
    for tick in range(interlock.TIMELINE_LENGTH + 100):
        timeline.record(interlock.REPORT_SENT, target="", at=float(tick))
    assert len(timeline.events) == interlock.TIMELINE_LENGTH
    assert timeline.events[0].at == 100.0
