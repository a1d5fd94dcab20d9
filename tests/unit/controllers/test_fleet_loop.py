"""The fleet loop: when it judges cars, in what order, and with which facts.

A queued car must not carry a judgement made when it was queued: at 10,000 cars it would be
written minutes later, stale (``controllers.workqueue`` says why). These pin a loop that
judges each car when a worker takes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from curbside_operator import settings
from curbside_operator.controllers import fleet as fleet_runtime
from tests.support.cars import NAME, NOW, lease, node
from tests.support.cars import car_body as body

Write = Callable[[Any, str, dict[str, Any]], Awaitable[dict[str, Any]]]


def fleet(*names: str, listed: tuple[str, ...] = tuple(fleet_runtime.SOURCES)) -> fleet_runtime.FleetState:
    state = fleet_runtime.FleetState(settings.OperatorConfig(), clock=lambda: NOW)
    for name in names:
        car = body(10, state="Driving", charging=False)
        car["metadata"]["name"] = name
        state.car_event("ADDED", name, car)
        state.leases[name] = lease(1)  # type: ignore[assignment]
        state.nodes[name] = node(driving=True)
    for source in listed:
        state.synced(source)
    return state


def record_writes(monkeypatch: pytest.MonkeyPatch, state: fleet_runtime.FleetState) -> list[tuple[str, Any]]:
    """Status writes succeed and are answered with the patched object; returns their log."""
    writes: list[tuple[str, Any]] = []

    async def write(_client: Any, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        writes.append((name, patch["status"]["operator"]["eligible"]))
        held = state.cars[name].model_dump(mode="json", by_alias=True, exclude_none=True)
        held["status"].update(patch["status"])
        held["metadata"]["resourceVersion"] = str(int(held["metadata"]["resourceVersion"]) + 1)
        return held

    async def patch_node(_client: Any, name: str, patch: dict[str, Any]) -> Any:
        raise AssertionError(f"no Node write expected for {name}: {patch}")

    monkeypatch.setattr(fleet_runtime.kube, "patch_vehiclenode_status", write)
    monkeypatch.setattr(fleet_runtime.kube, "patch_node", patch_node)
    return writes


async def settle(loop: fleet_runtime.FleetLoop, workers: int = 2) -> None:
    tasks = [asyncio.create_task(loop.work()) for _ in range(workers)]
    try:
        await asyncio.wait_for(loop.drain(), 5)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_no_car_is_judged_until_vehiclenodes_nodes_and_leases_are_all_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = fleet(NAME, listed=("VehicleNodes", "Nodes"))  # Leases not listed: every car looks silent
    record_writes(monkeypatch, state)
    loop = fleet_runtime.FleetLoop(state, client=None)  # type: ignore[arg-type]
    loop.step()
    assert loop.queue.waiting() == (0, 0)
    state.synced("Leases")
    loop.step()
    assert NAME in loop.queue


def test_a_car_is_judged_when_a_worker_takes_it_with_what_is_known_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = fleet(NAME)
    writes = record_writes(monkeypatch, state)
    loop = fleet_runtime.FleetLoop(state, client=None)  # type: ignore[arg-type]
    loop.step()  # queued while Driving (ineligible) ...
    state.car_event("MODIFIED", NAME, body(11))  # ... and Charging before a worker takes it
    asyncio.run(settle(loop))
    # One write, with the report the worker found: not a stale "not parked" followed by a fix.
    assert writes == [(NAME, True)]


def test_changed_cars_queue_ahead_of_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"car-{i:05d}" for i in range(50)]
    state = fleet(*names)
    record_writes(monkeypatch, state)
    loop = fleet_runtime.FleetLoop(state, client=None)  # type: ignore[arg-type]
    state.take_dirty()
    loop.step()  # the first step sweeps: every car, behind anything changed
    assert loop.queue.waiting() == (0, 50)
    changed = body(11)
    changed["metadata"]["name"] = names[-1]
    state.car_event("MODIFIED", names[-1], changed)
    loop.step()
    assert loop.queue.waiting() == (1, 49)

    async def first() -> str:
        return await loop.queue.get()

    assert asyncio.run(first()) == names[-1]


def test_a_worker_outlives_an_unexpected_failure_and_the_car_is_looked_at_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = fleet("car-a", "car-b")
    writes = record_writes(monkeypatch, state)
    real: Write = fleet_runtime.kube.patch_vehiclenode_status

    async def flaky(client: Any, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        if name == "car-a":
            raise RuntimeError("a bug")
        return await real(client, name, patch)

    monkeypatch.setattr(fleet_runtime.kube, "patch_vehiclenode_status", flaky)
    loop = fleet_runtime.FleetLoop(state, client=None)  # type: ignore[arg-type]
    state.take_dirty()
    loop.queue.add("car-a")
    loop.queue.add("car-b")
    asyncio.run(settle(loop, workers=1))
    assert writes == [("car-b", False)]  # the one worker went on after car-a's failure
    assert "car-a" in state.dirty


def test_a_car_to_enroll_is_created_once(monkeypatch: pytest.MonkeyPatch) -> None:
    state = fleet()
    created: list[str] = []

    async def create(_client: Any, body: dict[str, Any]) -> None:
        created.append(body["metadata"]["name"])

    monkeypatch.setattr(fleet_runtime.kube, "create_vehiclenode", create)
    loop = fleet_runtime.FleetLoop(state, client=None)  # type: ignore[arg-type]
    state.enroll["car-new"] = {"metadata": {"name": "car-new"}}
    loop.step()
    state.enroll["car-new"] = {"metadata": {"name": "car-new"}}  # the Node changed again meanwhile
    loop.step()
    asyncio.run(settle(loop))
    assert created == ["car-new"]


def test_the_echo_of_our_own_write_queues_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    state = fleet(NAME)
    record_writes(monkeypatch, state)
    told: list[str] = []
    state.listeners.append(told.append)
    loop = fleet_runtime.FleetLoop(state, client=None)  # type: ignore[arg-type]
    state.take_dirty()
    loop.queue.add(NAME)
    asyncio.run(settle(loop))
    assert told == [NAME]  # the job loop hears of the new verdict from the write's answer
    echo = state.cars[NAME].model_dump(mode="json", by_alias=True, exclude_none=True)
    state.car_event("MODIFIED", NAME, echo)  # the watch's event of that same write
    assert NAME not in state.dirty
    assert told == [NAME]
