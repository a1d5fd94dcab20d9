"""The fleet's watches of cars: VehicleNodes and car Nodes, fed into ``FleetState``.

Why this exists: these watches only feed ``fleet_runtime.FleetState``, so a car's heartbeat
or status change costs the operator no API write unless the car's judgement actually
changes. They are plain watches (``kube.fleet.watch_raw``), not kopf handlers: kopf would
first list all 10,000 Nodes into memory at once (see kube/fleet.py) and run an
``on.event`` handler per object through its per-object workers, and nothing here needs
kopf's progress or finalizer machinery.
"""

from __future__ import annotations

from typing import Any

from curbside_operator.handlers.fleet_runtime import FleetState
from curbside_operator.kube import fleet as kube

VEHICLE_LABEL = "curbside.dev/vehicle"


async def watch_vehiclenodes(state: FleetState, client: Any) -> None:
    async for ev_type, name, body in kube.watch_raw(client, kube.VehicleNodeResource):
        state.car_event(ev_type, name, body)


async def watch_nodes(state: FleetState, client: Any) -> None:
    async for ev_type, name, body in kube.watch_raw(client, kube.RawNode, labels={VEHICLE_LABEL: "true"}):
        state.node_event(ev_type, name, body)
