"""API calls of the operator's fleet side: car Leases, VehicleNode status, car Node markings.

Why this exists: only ``kube/`` talks to the API server. The fleet loop hands it merge
patches computed by ``reconcile.vehiclenode`` and gets back the object as stored, or one of
our own errors. Leases are watched here directly (not through kopf) because kopf scopes
namespaced watches per operator, and watching Leases cluster-wide would stream every
kubelet's heartbeat in ``kube-node-lease`` into the operator.

Cars' Nodes and VehicleNodes are watched here too, as raw dicts: kopf lists a resource whole
before it hands out the first object (10,000 Nodes are about 130 MB of dicts at once), and
what a long-lived process frees after such a peak stays in its heap. A watch without a
resourceVersion gets the same initial state from the API server's cache as a stream of
ADDED events, one object in memory at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.generic_resource import create_global_resource
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from curbside_operator.api import GROUP
from curbside_operator.kube import errors

log = logging.getLogger(__name__)

FIELD_MANAGER = "curbside-operator"
VehicleNodeResource = create_global_resource(GROUP, "v1alpha1", "VehicleNode", "vehiclenodes")
RawNode = create_global_resource("", "v1", "Node", "nodes")
"""Nodes as plain dicts (a lightkube generic resource): the fleet keeps only a small view."""


def make_client() -> AsyncClient:
    """A client from ``KUBECONFIG``/``~/.kube/config``, or the in-cluster ServiceAccount."""
    return AsyncClient(field_manager=FIELD_MANAGER)


def lease_times(lease: Lease) -> tuple[datetime | None, int]:
    """A Lease's renew time (timezone-aware) and duration in seconds."""
    spec = lease.spec
    renew = spec.renewTime if spec is not None else None
    if renew is not None and renew.tzinfo is None:
        renew = renew.replace(tzinfo=UTC)
    duration = (spec.leaseDurationSeconds if spec is not None else None) or 0
    return renew, int(duration)


async def watch_leases(
    client: AsyncClient, *, namespace: str
) -> AsyncIterator[tuple[str, str, datetime | None, int]]:
    """Yield ``(event type, car name, renew time, duration)`` forever: a list, then the watch.

    On any error the stream restarts with a fresh list after a short pause, so a lost
    watch or a 410 Gone never leaves the operator with a stale picture.
    """
    backoff = 0.5
    while True:
        try:
            async for ev_type, lease in client.watch(Lease, namespace=namespace):
                backoff = 0.5
                name = lease.metadata.name if lease.metadata is not None else None
                if name:
                    yield (ev_type, name, *lease_times(lease))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = errors.translate(exc, action=f"watching Leases in {namespace}")
            log.warning("%s; re-listing in %.1fs", err, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


async def watch_raw(
    client: AsyncClient, resource: Any, *, labels: dict[str, Any] | None = None
) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """Yield ``(event type, name, object as a dict)`` forever: the current objects as ADDED
    events, then their changes; restarted after any error (as ``watch_leases``)."""
    what = resource._api_info.plural
    backoff = 0.5
    while True:
        try:
            async for ev_type, obj in client.watch(resource, labels=labels):
                backoff = 0.5
                name = (obj.get("metadata") or {}).get("name")
                if name:
                    yield ev_type, name, obj
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = errors.translate(exc, action=f"watching {what}")
            log.warning("%s; watching again in %.1fs", err, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


async def patch_vehiclenode_status(
    client: AsyncClient, name: str, patch: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge-patch a VehicleNode's status subresource; return the stored object."""
    try:
        obj = await client.patch(VehicleNodeResource.Status, name, dict(patch), patch_type=PatchType.MERGE)
    except Exception as exc:
        raise errors.translate(exc, action=f"patching VehicleNode {name} status") from exc
    stored: dict[str, Any] = obj.to_dict()  # type: ignore[no-untyped-call]
    return stored


async def patch_node(client: AsyncClient, name: str, patch: Mapping[str, Any]) -> Node:
    """Merge-patch a car's Node (taints, labels); return the stored Node."""
    try:
        return await client.patch(Node, name, dict(patch), patch_type=PatchType.MERGE)
    except Exception as exc:
        raise errors.translate(exc, action=f"patching Node {name}") from exc


async def create_vehiclenode(client: AsyncClient, body: Mapping[str, Any]) -> None:
    """Create a VehicleNode; one that already exists counts as success."""
    try:
        await client.create(VehicleNodeResource.from_dict(dict(body)))
    except Exception as exc:
        err = errors.translate(exc, action=f"creating VehicleNode {body['metadata']['name']}")
        if isinstance(err, errors.AlreadyExistsError):
            return
        raise err from exc


def now() -> datetime:
    return datetime.now(UTC)
