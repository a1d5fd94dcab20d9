"""API calls of the operator's fleet side: car Leases, VehicleNode status, car Node markings.

Why this exists: only ``kube/`` talks to the API server. The fleet loop hands it merge
patches computed by ``reconcile.vehiclenode`` and gets back the object as stored, or one of
our own errors. Leases are watched here directly (not through kopf) because kopf scopes
namespaced watches per operator, and watching Leases cluster-wide would stream every
kubelet's heartbeat in ``kube-node-lease`` into the operator.

Cars' Nodes and VehicleNodes are watched the same way (``kube.watch``), as plain dicts:
kopf would list each whole before handing out the first object.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.generic_resource import create_global_resource
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from curbside_api import GROUP
from curbside_operator.kube import errors, watch

log = logging.getLogger(__name__)

FIELD_MANAGER = "curbside-operator"
VehicleNodeResource = create_global_resource(GROUP, "v1alpha1", "VehicleNode", "vehiclenodes")
RawNode = create_global_resource("", "v1", "Node", "nodes")
"""Nodes as plain dicts (a lightkube generic resource): the fleet keeps only a small view."""


def make_client() -> AsyncClient:
    """A client from ``KUBECONFIG``/``~/.kube/config``, or the in-cluster ServiceAccount."""
    return AsyncClient(field_manager=FIELD_MANAGER)


def renew_time(lease: Lease) -> datetime | None:
    """A Lease's renew time, timezone-aware."""
    spec = lease.spec
    renew = spec.renewTime if spec is not None else None
    if renew is not None and renew.tzinfo is None:
        renew = renew.replace(tzinfo=UTC)
    return renew


async def watch_leases(
    client: AsyncClient, *, namespace: str, on_listed: Callable[[], None] | None = None
) -> AsyncIterator[tuple[str, str, datetime | None]]:
    """Yield ``(event type, car name, renew time)`` forever (``watch.list_then_watch``)."""
    async for ev_type, name, lease in watch.list_then_watch(
        client, Lease, what=f"Leases in {namespace}", namespace=namespace, on_listed=on_listed
    ):
        yield ev_type, name, renew_time(lease) if lease is not None else None


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
