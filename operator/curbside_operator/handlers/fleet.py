"""The fleet's watches of cars: VehicleNodes and car Nodes, fed into ``FleetState``.

Why this exists: these watches only feed ``fleet_runtime.FleetState``, so a car's heartbeat
or status change costs the operator no API write unless the car's judgement actually
changes. They are our own watches (``kube.watch.list_then_watch``), not kopf handlers: kopf
would first list all 10,000 Nodes into memory at once (see kube/watch.py) and run an
``on.event`` handler per object through its per-object workers, and nothing here needs
kopf's progress or finalizer machinery.
"""

from __future__ import annotations

from typing import Any

from curbside_operator.controllers.fleet import FleetState
from curbside_operator.kube import fleet as kube
from curbside_operator.kube import watch

VEHICLE_LABEL = "curbside.dev/vehicle"


async def watch_vehiclenodes(state: FleetState, client: Any) -> None:
    async for ev_type, name, body in watch.list_then_watch(
        client, kube.VehicleNodeResource, what="VehicleNodes", on_listed=lambda: state.synced("VehicleNodes")
    ):
        state.car_event(ev_type, name, body or {})


async def watch_nodes(state: FleetState, client: Any) -> None:
    labels = {VEHICLE_LABEL: "true"}
    async for ev_type, name, body in watch.list_then_watch(
        client, kube.RawNode, what="car Nodes", labels=labels, on_listed=lambda: state.synced("Nodes")
    ):
        state.node_event(ev_type, name, body or {})
