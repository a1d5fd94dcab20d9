"""kopf adapters for the fleet: record what changed, let the fleet loop act on it.

Why this exists: these handlers only feed ``fleet_runtime.FleetState`` (``on.event`` keeps
no progress annotations and writes nothing), so a car's heartbeat or status change costs
the operator no API write unless the car's judgement actually changes.
"""

from __future__ import annotations

from typing import Any

import kopf

from curbside_operator.api import GROUP

VEHICLE_LABEL = "curbside.dev/vehicle"


@kopf.on.event(GROUP, "v1alpha1", "vehiclenodes")
async def vehiclenode_event(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
    memo.fleet.car_event(event.get("type"), name, event["object"])


@kopf.on.event("", "v1", "nodes", labels={VEHICLE_LABEL: "true"})
async def node_event(event: kopf.RawEvent, name: str, memo: kopf.Memo, **_: Any) -> None:
    memo.fleet.node_event(event.get("type"), name, event["object"])
