"""List, then watch from the list's resourceVersion: the operator's own watches of the fleet.

Why this exists: the fleet (car Nodes, VehicleNodes, car Leases) is too big to be listed
whole the way kopf does (10,000 Nodes are about 130 MB of dicts at once, and a Python
process keeps most of such a peak as RSS), and lightkube's plain watch is not a fix on its
own: started without a resourceVersion it streams the current objects as ADDED events, but
it keeps the last object's own resourceVersion as its resume point, which after a dropped
connection is usually older than the API server's watch cache ("too old resource
version"); starting over re-sends every object. At 10,000 cars that loop re-streamed all
Nodes about once a minute while the operator was enrolling them.

So: a paginated list (``CHUNK`` objects in memory at a time) gives the current objects, the
watch starts at the list's resourceVersion (after which events arrive in order, so
lightkube's resume point is sound), and only an error (a 410 Gone included) leads to a
fresh list. Objects that vanished between two lists are reported as DELETED, so a missed
deletion never leaves a ghost behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from lightkube import AsyncClient

from curbside_operator.kube import errors

log = logging.getLogger(__name__)

CHUNK = 500
"""Objects per list page: what the initial state costs in memory at once."""

Event = tuple[str, str, Any]
"""``(type, key, object)``: ``ADDED`` for listed objects; the object is None for a DELETED
that a list found out about. The key is the object's name (``name_of``), or what the
watch's ``key`` makes of it (``namespaced_key`` for a watch across namespaces)."""


def _meta(obj: Any, field: str) -> str | None:
    """A string field of the object's metadata, for plain dicts (generic resources) and
    lightkube's models alike."""
    if isinstance(obj, dict):
        value = (obj.get("metadata") or {}).get(field)
    else:
        value = getattr(getattr(obj, "metadata", None), field, None)
    return value if isinstance(value, str) else None


def name_of(obj: Any) -> str | None:
    """The object's name."""
    return _meta(obj, "name")


def namespaced_key(obj: Any) -> str | None:
    """``namespace/name``: the key of objects watched in every namespace, where names repeat."""
    name = name_of(obj)
    if name is None:
        return None
    namespace = _meta(obj, "namespace")
    return f"{namespace}/{name}" if namespace else name


def older(version: str | None, than: str | None) -> bool:
    """Is resourceVersion ``version`` older than ``than``?

    Our own write's answer and the watch's events race: whichever the operator takes last
    must not replace a newer version it already holds. etcd's versions are integers;
    versions that cannot be ordered (or a missing one) count as not older.
    """
    try:
        return version is not None and than is not None and int(version) < int(than)
    except ValueError:
        return False


def vanished(known: set[str], listed: set[str]) -> list[Event]:
    """DELETED events for what was known before a list and is not in it."""
    return [("DELETED", name, None) for name in sorted(known - listed)]


async def list_then_watch(
    client: AsyncClient,
    resource: Any,
    *,
    what: str,
    namespace: str | None = None,
    labels: dict[str, Any] | None = None,
    key: Callable[[Any], str | None] = name_of,
    on_listed: Callable[[], None] | None = None,
) -> AsyncIterator[Event]:
    """Yield the current objects, then their changes, forever (see the module docstring).

    ``on_listed`` is called once every listed object has been yielded (after each list): from
    then on the consumer holds every object, so it may act on what is *missing*.
    """
    known: set[str] = set()
    backoff = 0.5
    while True:
        try:
            listing = client.list(resource, namespace=namespace, labels=labels, chunk_size=CHUNK)
            listed: set[str] = set()
            async for obj in listing:
                if (name := key(obj)) is not None:
                    listed.add(name)
                    yield "ADDED", name, obj
            for event in vanished(known, listed):
                yield event
            known = listed
            if on_listed is not None:
                on_listed()
            version = listing.resourceVersion
            async for ev_type, obj in client.watch(
                resource, namespace=namespace, labels=labels, resource_version=version
            ):
                backoff = 0.5
                if (name := key(obj)) is None:
                    continue
                if ev_type == "DELETED":
                    known.discard(name)
                else:
                    known.add(name)
                yield ev_type, name, obj
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = errors.translate(exc, action=f"watching {what}")
            log.warning("%s; listing again in %.1fs", err, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
