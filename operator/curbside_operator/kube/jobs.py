"""API calls of the operator's job side: inference pods, job status, finalizers, Events.

Why this exists: only ``kube/`` talks to the API server. Each call is idempotent in the way
the job loop needs after a crash: creating a pod that exists and deleting one that is gone
are both success, so the loop can simply do its plan again.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Event, Pod
from lightkube.types import PatchType

from curbside_api import GROUP
from curbside_operator.kube import errors

log = logging.getLogger(__name__)

InferenceJobResource = create_namespaced_resource(GROUP, "v1alpha1", "InferenceJob", "inferencejobs")
RawPod = create_namespaced_resource("", "v1", "Pod", "pods")
"""Pods as plain dicts, for the operator's pod watch: lightkube's typed ``Pod`` builds a tree of
dataclasses per object, which the watch would throw away after reading six fields."""
# Not kopf's finalizer name: kopf removes its own from objects without deletion handlers.
FINALIZER = f"{GROUP}/job-cleanup"
COMPONENT = "curbside-operator"


async def list_jobs(client: AsyncClient) -> list[dict[str, Any]]:
    """Every InferenceJob in every namespace, as plain dicts."""
    try:
        return [obj.to_dict() async for obj in client.list(InferenceJobResource, namespace="*")]  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise errors.translate(exc, action="listing InferenceJobs") from exc


async def create_pod(client: AsyncClient, body: Mapping[str, Any]) -> bool:
    """Create an inference pod; False when it already existed (which is success too)."""
    meta = body["metadata"]
    try:
        pod = typing.cast(Pod, Pod.from_dict(dict(body)))
        await client.create(pod)
    except Exception as exc:
        err = errors.translate(exc, action=f"creating pod {meta['namespace']}/{meta['name']}")
        if isinstance(err, errors.AlreadyExistsError):
            return False
        raise err from exc
    return True


async def delete_pod(client: AsyncClient, namespace: str, name: str) -> None:
    """Delete a pod; one that is already gone counts as success."""
    try:
        await client.delete(Pod, name, namespace=namespace)
    except Exception as exc:
        err = errors.translate(exc, action=f"deleting pod {namespace}/{name}")
        if isinstance(err, errors.NotFoundError):
            return
        raise err from exc


async def patch_job_status(
    client: AsyncClient, namespace: str, name: str, patch: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge-patch an InferenceJob's status subresource; return the stored object."""
    try:
        obj = await client.patch(
            InferenceJobResource.Status, name, dict(patch), namespace=namespace, patch_type=PatchType.MERGE
        )
    except Exception as exc:
        raise errors.translate(exc, action=f"patching InferenceJob {namespace}/{name} status") from exc
    stored: dict[str, Any] = obj.to_dict()  # type: ignore[no-untyped-call]
    return stored


async def set_finalizers(
    client: AsyncClient, namespace: str, name: str, finalizers: list[str], *, resource_version: str | None
) -> dict[str, Any] | None:
    """Replace the job's finalizers, guarded by its resourceVersion (a conflict: look again).
    Returns the stored job, or None when it is gone."""
    meta: dict[str, Any] = {"finalizers": finalizers}
    if resource_version:
        meta["resourceVersion"] = resource_version
    try:
        obj = await client.patch(
            InferenceJobResource, name, {"metadata": meta}, namespace=namespace, patch_type=PatchType.MERGE
        )
    except Exception as exc:
        err = errors.translate(exc, action=f"updating finalizers of InferenceJob {namespace}/{name}")
        if isinstance(err, errors.NotFoundError):
            return None
        raise err from exc
    stored: dict[str, Any] = obj.to_dict()  # type: ignore[no-untyped-call]
    return stored


async def post_event(
    client: AsyncClient,
    *,
    namespace: str,
    name: str,
    uid: str,
    type: str,
    reason: str,
    message: str,
) -> None:
    """Post one Event on an InferenceJob (failures are logged, never raised: Events are best effort)."""
    now = datetime.now(UTC)
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "InferenceJob",
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "type": type,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now.isoformat().replace("+00:00", "Z"),
        "lastTimestamp": now.isoformat().replace("+00:00", "Z"),
        "count": 1,
    }
    try:
        event = typing.cast(Event, Event.from_dict(body))
        await client.create(event)
    except Exception as exc:
        log.warning("%s", errors.translate(exc, action=f"posting Event {reason} on {namespace}/{name}"))
