"""Driving while work runs: the stop reaches the worker process before the ``Driving`` patch is sent.

The agent runs in this process with the car's own credentials; the worker is a real process
whose SIGTERM handler writes the moment it ran (``CLOCK_MONOTONIC``, the same clock across
processes on Linux) and exits. The reporter notes the moment it sends the patch that says
``Driving``. Both are compared, and the API server must hold ``Driving`` afterwards.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from curbside_agent import agent, credentials, interlock, kube, policy
from curbside_agent.signals import sources
from curbside_api.v1alpha1 import vehiclenode
from tests.support.agent import DRIVING, PARKED, Car, status_of, write_reading
from tests.support.figures import Figure

WORKER = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def on_term(signum, frame):
    out.write_text(str(time.clock_gettime_ns(time.CLOCK_MONOTONIC)))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:  # "inference": busy, the way a worker is when the car drives off
    sum(i * i for i in range(10_000))
"""


class RecordingReporter(kube.CarReporter):
    """The car's reporter, noting when each patch saying ``Driving`` is sent."""

    driving_sent_ns: list[int]

    async def patch_status(self, patch: dict[str, Any]) -> None:
        if patch.get("state") == "Driving":
            self.driving_sent_ns.append(time.clock_gettime_ns(time.CLOCK_MONOTONIC))
        await super().patch_status(patch)


def test_the_worker_is_stopped_before_driving_is_reported(
    car: Car, api: httpx.Client, tmp_path: Path, figure: Figure
) -> None:
    signals, stopped_file = tmp_path / "car.json", tmp_path / "worker-stopped"
    write_reading(signals, PARKED)
    worker = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", WORKER, str(stopped_file)], stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None
    assert worker.stdout.readline() == "ready\n"
    body = api.get(f"/apis/curbside.dev/v1alpha1/vehiclenodes/{car.name}").json()
    rules = policy.from_spec(vehiclenode.VehicleNode.from_body(body).spec.policy)
    guard = interlock.Interlock(clock=time.monotonic, grace_seconds=5.0)

    async def scenario() -> RecordingReporter:
        api_client = kube.Api(kube.connect(credentials.Credentials.load(car.kubeconfig)))
        reporter = RecordingReporter(
            api_client, car=car.name, lease_seconds=10, clock=lambda: datetime.now(UTC)
        )
        reporter.driving_sent_ns = []
        the_car = agent.Agent(
            signals=sources.FileSource(signals),
            reporter=reporter,
            owner_policy=rules,
            guard=guard,
            now=lambda: datetime.now(UTC),
            monotonic=time.monotonic,
        )
        try:
            first = await the_car.step()
            assert first.eligibility.eligible, first.eligibility.message
            guard.register(interlock.ProcessTarget(worker.pid, name="worker"))
            write_reading(signals, DRIVING)
            result = await the_car.step()
            assert (result.car, result.stopped) == (vehiclenode.VehicleState.DRIVING, 1)
            assert "state" in result.patched
            await guard.settle()
        finally:
            await api_client.aclose()
        return reporter

    try:
        reporter = asyncio.run(scenario())
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.wait(timeout=10) == 0  # it exited by itself on SIGTERM, not by SIGKILL
    stopped_ns = int(stopped_file.read_text())
    (sent_ns,) = reporter.driving_sent_ns
    figure("worker stopped -> Driving sent", f"{(sent_ns - stopped_ns) / 1e6:.2f} ms")
    assert stopped_ns < sent_ns
    assert status_of(api, car.name)["state"] == "Driving"
    (stop,) = guard.timeline.of(interlock.STOP_DELIVERED)
    assert stop.at < guard.timeline.of(interlock.REPORT_SENT)[-1].at
