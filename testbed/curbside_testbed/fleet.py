"""Car Nodes for the test bed: what a car looks like to Kubernetes, created by the thousand.

Why this exists: kwok turns a Node object into a live fake kubelet (Ready condition, Lease
heartbeats, pods go Running). We decide what a car Node carries: the vehicle label, the car
taint that keeps ordinary pods off, a region, an accelerator, and capacity like a car's
inference computer. Creation is concurrent so 10,000 cars come up in well under a minute.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx

from curbside_testbed import components

VEHICLE_LABEL = "curbside.dev/vehicle"
VEHICLE_TAINT = {"key": "curbside.dev/vehicle", "value": "true", "effect": "NoSchedule"}
REGIONS = ("eu-north", "eu-west", "us-east", "us-west")
ACCELERATORS = (("hw4", "144"), ("hw4", "144"), ("hw5", "500"))
MODELS = ("Model 3", "Model Y", "ID.4", "Ioniq 5")
CONCURRENCY = 64


def car_name(index: int) -> str:
    return f"car-{index:05d}"


def car_node(index: int) -> dict[str, Any]:
    """The Node object for car ``index`` (deterministic, so re-running ``up`` is a no-op)."""
    hw, tops = ACCELERATORS[index % len(ACCELERATORS)]
    region = REGIONS[index % len(REGIONS)]
    zone = f"{region}-{'abc'[index // len(REGIONS) % 3]}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": car_name(index),
            "labels": {
                VEHICLE_LABEL: "true",
                "type": "kwok",
                "kubernetes.io/hostname": car_name(index),
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "arm64",
                "node.kubernetes.io/instance-type": hw,
                "topology.kubernetes.io/region": region,
                "topology.kubernetes.io/zone": zone,
                "curbside.dev/accelerator-tops": tops,
                "curbside.dev/accelerator-memory-gib": "16",
            },
            # The car's identity, as enrollment sets it; the operator creates its VehicleNode.
            "annotations": {
                components.KWOK_ANNOTATION: "fake",
                "curbside.dev/vin": f"5YJ3E1EA{index:09d}",
                "curbside.dev/owner": f"owner-{index // 2:05d}",
                "curbside.dev/model": MODELS[index % len(MODELS)],
            },
        },
        "spec": {"taints": [VEHICLE_TAINT]},
        "status": {
            "allocatable": _capacity(),
            "capacity": _capacity(),
            "nodeInfo": {
                "architecture": "arm64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kernelVersion": "6.1.0-car",
                "osImage": "Curbside car OS (simulated)",
                "containerRuntimeVersion": "kwok",
            },
        },
    }


def _capacity() -> dict[str, str]:
    # A car's inference computer: 12 cores, 32 GiB, one accelerator, a small local disk.
    return {
        "cpu": "12",
        "memory": "32Gi",
        "pods": "16",
        "ephemeral-storage": "128Gi",
        "curbside.dev/accelerator": "1",
    }


async def _create_all(client: httpx.AsyncClient, indexes: list[int]) -> None:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with sem:
            for attempt in range(5):
                r = await client.post("/api/v1/nodes", json=car_node(i))
                if r.status_code in (201, 409):
                    return
                if r.status_code in (429, 500, 503, 504) and attempt < 4:
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                raise RuntimeError(f"creating Node {car_name(i)}: HTTP {r.status_code}: {r.text[:300]}")

    await asyncio.gather(*(one(i) for i in indexes))


def list_cars(client: httpx.Client) -> list[dict[str, Any]]:
    """Every car Node, following list pagination."""
    items: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"labelSelector": f"{VEHICLE_LABEL}=true", "limit": 2000}
    while True:
        r = client.get("/api/v1/nodes", params=params)
        r.raise_for_status()
        body = r.json()
        items += body["items"]
        cont = body["metadata"].get("continue")
        if not cont:
            return items
        params["continue"] = cont


def ensure_cars(client: httpx.Client, count: int, *, ssl_context: ssl.SSLContext) -> None:
    """Create car Nodes ``0..count-1`` that do not exist yet."""
    existing = {n["metadata"]["name"] for n in list_cars(client)}
    missing = [i for i in range(count) if car_name(i) not in existing]
    if not missing:
        return
    started = time.monotonic()
    print(f"[testbed] creating {len(missing)} car Nodes ...", flush=True)

    async def run() -> None:
        async with httpx.AsyncClient(
            base_url=str(client.base_url),
            verify=ssl_context,
            timeout=60,
            limits=httpx.Limits(max_connections=CONCURRENCY),
        ) as aclient:
            await _create_all(aclient, missing)

    asyncio.run(run())
    print(f"[testbed] created {len(missing)} car Nodes in {time.monotonic() - started:.1f}s", flush=True)


def is_ready(node: dict[str, Any]) -> bool:
    for cond in node.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def wait_ready(client: httpx.Client, count: int, *, deadline: float, check: Callable[[], None]) -> None:
    """Wait until ``count`` car Nodes report Ready (kwok is heartbeating them)."""
    last = -1
    while time.monotonic() < deadline:
        check()
        ready = sum(1 for n in list_cars(client) if is_ready(n))
        if ready >= count:
            print(f"[testbed] {ready} car Nodes Ready", flush=True)
            return
        if ready != last:
            print(f"[testbed] {ready}/{count} car Nodes Ready ...", flush=True)
            last = ready
        # Listing 10,000 Nodes costs the API server; poll large fleets less often.
        time.sleep(max(1.0, count / 2000))
    raise RuntimeError(f"only {last}/{count} car Nodes became Ready in time")
