"""Enrolling a simulated fleet: a VehicleNode per car (spec from its profile) and the Lease namespace.

Why this module exists: before a simulated car can report, the cluster must know it the way
fleet onboarding would: a ``VehicleNode`` named like the car's Node with the car's identity,
its hardware (read from the Node's labels, as an onboarding tool would read the car's
manifest) and an owner's policy. Owners differ, so policies are drawn per car from a seeded
generator: battery thresholds, charging and network requirements, heat limits, night or
office-hours windows, energy budgets. A VehicleNode that exists already (made by the
operator or an earlier run) is kept as it is, including its policy: enrollment never
overwrites what an owner set.

Everything here is deterministic for (seed, car): the same fleet enrolls the same way.
``vehiclenode_body`` is pure; ``enroll`` talks to the API server with the admin credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from datetime import datetime, timedelta
from typing import Any

from curbside_agent import kube
from curbside_api.v1alpha1 import vehiclenode
from curbside_sim import profiles

VEHICLE_LABEL = "curbside.dev/vehicle"
VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
MODELS = ("Model 3", "Model Y", "ID.4", "Ioniq 5", "EV6", "Polestar 2", "Enyaq", "Mustang Mach-E")
MEMORY = re.compile(r"^(\d+)Gi$")


@dataclasses.dataclass(frozen=True, slots=True)
class NodeFacts:
    """What enrollment reads from a car's Node (defaults when the Node does not exist)."""

    accelerator: str = "hw4"
    tops: int = 144
    memory_gib: int = 32
    region: str | None = None

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> NodeFacts:
        labels = (node.get("metadata") or {}).get("labels") or {}
        capacity = (node.get("status") or {}).get("capacity") or {}
        memory = MEMORY.match(str(capacity.get("memory", "")))
        tops = str(labels.get("curbside.dev/accelerator-tops", ""))
        found: dict[str, Any] = {"region": labels.get("topology.kubernetes.io/region")}
        if "node.kubernetes.io/instance-type" in labels:
            found["accelerator"] = labels["node.kubernetes.io/instance-type"]
        if tops.isdigit():
            found["tops"] = int(tops)
        if memory:
            found["memory_gib"] = int(memory.group(1))
        return cls(**found)


def time_zone(start: datetime) -> str:
    """The policy time zone matching the simulation's clock (its UTC offset, no DST)."""
    offset = start.utcoffset() or timedelta()
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    if rest or not offset:
        return "UTC"
    return f"Etc/GMT{-hours:+d}"  # POSIX sign: Etc/GMT-2 is two hours ahead of UTC


def owner_policy(seed: int, index: int, *, zone: str) -> dict[str, Any]:
    """A varied, valid owner's policy for car ``index`` (wire names)."""
    draw = profiles.rng(seed, index, -3)
    start = draw.choice((40, 50, 50, 60, 70))
    policy: dict[str, Any] = {
        "minBatteryPercent": start,
        "reserveBatteryPercent": draw.choice((20, 30)) if start > 30 else 20,
        "requireCharging": draw.random() < 0.25,
        "requireUnmeteredNetwork": draw.random() < 0.8,
        "maxSocCelsius": draw.choice((80, 85, 90)),
        "maxCabinCelsius": draw.choice((40, 45, 50)),
        "timeZone": zone,
    }
    roll = draw.random()
    if roll < 0.2:
        policy["timeWindows"] = [{"start": "22:00", "end": "06:30"}]
    elif roll < 0.3:
        weekdays = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
        policy["timeWindows"] = [{"days": weekdays, "start": "09:00", "end": "17:00"}]
    if draw.random() < 0.3:
        policy["maxEnergyKwhPerDay"] = float(draw.choice((4, 8, 12, 20)))
    return policy


def vehiclenode_body(seed: int, index: int, *, node: NodeFacts, zone: str) -> dict[str, Any]:
    """The VehicleNode a simulated car is enrolled with (validated against the API model)."""
    draw = profiles.rng(seed, index, -2)
    car = profiles.car_name(index)
    body = {
        "apiVersion": "curbside.dev/v1alpha1",
        "kind": "VehicleNode",
        "metadata": {"name": car, "labels": {VEHICLE_LABEL: "true"}},
        "spec": {
            "vehicle": {
                "vin": "".join(draw.choice(VIN_ALPHABET) for _ in range(17)),
                "model": draw.choice(MODELS),
                "owner": f"owner-{draw.randrange(max(1, index * 4 // 5 + 1)):05d}",
            },
            "hardware": {"accelerator": node.accelerator, "tops": node.tops, "memoryGiB": node.memory_gib},
            "policy": owner_policy(seed, index, zone=zone),
        },
    }
    vehiclenode.VehicleNode.from_body(body)
    return body


async def _bounded(limit: int, jobs: list[Any]) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(job: Any) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


async def enroll(
    api: kube.Api, *, cars: int, seed: int, start: datetime, namespace: str, concurrency: int = 32
) -> tuple[dict[str, dict[str, Any]], dict[str, NodeFacts]]:
    """Make sure every car has a VehicleNode and the Lease namespace exists.

    Returns the cars' stored VehicleNodes and what their Nodes say, both by car name.
    """
    names = [profiles.car_name(index) for index in range(cars)]
    nodes = {n["metadata"]["name"]: n for n in await api.list_all("/api/v1/nodes")}
    facts = {name: NodeFacts.from_node(nodes[name]) if name in nodes else NodeFacts() for name in names}
    with contextlib.suppress(kube.ConflictError):
        await api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
    stored = {item["metadata"]["name"]: item for item in await api.list_all(kube.VEHICLENODES)}
    zone = time_zone(start)

    def creator(index: int) -> Any:
        async def create() -> None:
            body = vehiclenode_body(seed, index, node=facts[names[index]], zone=zone)
            try:
                stored[names[index]] = await api.request("POST", kube.VEHICLENODES, body=body)
            except kube.ConflictError:
                stored[names[index]] = await api.request("GET", f"{kube.VEHICLENODES}/{names[index]}")

        return create

    await _bounded(concurrency, [creator(index) for index, name in enumerate(names) if name not in stored])
    return {name: stored[name] for name in names}, facts
