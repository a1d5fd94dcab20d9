"""``kube.watch.list_then_watch``: the order of calls and events, with a scripted client.

The API server's side (pagination, 410 Gone) is exercised by the cluster tests; here the
point is what the operator does with it: list first, watch from the list's version, list
again after an error and report what vanished meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from curbside_operator.kube import watch


def obj(name: str, version: str = "1") -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}}


class Gone(Exception):
    """Stands in for lightkube's ApiError(410)."""


class Listing:
    def __init__(self, items: list[dict[str, Any]], version: str) -> None:
        self.items, self.resourceVersion = items, version

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for item in self.items:
            yield item


class ScriptedClient:
    """Each list answers the next of ``lists``; each watch plays the next of ``watches``
    (events, then an exception or, for the last one, the end of the test)."""

    def __init__(self, lists: list[Listing], watches: list[list[Any]]) -> None:
        self.lists, self.watches = lists, watches
        self.calls: list[tuple[str, Any]] = []

    def list(self, resource: Any, **kw: Any) -> Listing:
        self.calls.append(("list", kw["chunk_size"]))
        return self.lists.pop(0)

    async def watch(self, resource: Any, **kw: Any) -> AsyncIterator[tuple[str, Any]]:
        self.calls.append(("watch", kw["resource_version"]))
        for step in self.watches.pop(0):
            if isinstance(step, Exception):
                raise step
            yield step
        raise asyncio.CancelledError  # the script is over


async def collect(client: ScriptedClient) -> list[tuple[str, str, bool]]:
    """Every event until the script ends (the client raises CancelledError then)."""
    out: list[tuple[str, str, bool]] = []

    async def run() -> None:
        stream = watch.list_then_watch(client, object(), what="things")  # type: ignore[arg-type]
        async for ev_type, name, body in stream:
            out.append((ev_type, name, body is not None))

    with pytest.raises(asyncio.CancelledError):
        await run()
    return out


def test_list_then_watch_from_the_lists_version_and_list_again_after_an_error() -> None:
    client = ScriptedClient(
        lists=[Listing([obj("a"), obj("b"), obj("c")], "100"), Listing([obj("a"), obj("d")], "200")],
        watches=[
            [("MODIFIED", obj("a", "101")), ("DELETED", obj("c", "102")), Gone("410")],
            [("ADDED", obj("e", "201"))],
        ],
    )
    events = asyncio.run(collect(client))
    assert client.calls == [("list", watch.CHUNK), ("watch", "100"), ("list", watch.CHUNK), ("watch", "200")]
    assert events == [
        ("ADDED", "a", True),
        ("ADDED", "b", True),
        ("ADDED", "c", True),
        ("MODIFIED", "a", True),
        ("DELETED", "c", True),
        # after the error: the fresh list, then b, which vanished unseen (c's deletion was seen)
        ("ADDED", "a", True),
        ("ADDED", "d", True),
        ("DELETED", "b", False),
        ("ADDED", "e", True),
    ]


def test_names_of_dicts_and_of_models() -> None:
    class Meta:
        name = "car-1"

    class Model:
        metadata = Meta()

    assert watch.name_of(obj("car-0")) == "car-0"
    assert watch.name_of(Model()) == "car-1"
    assert watch.name_of({"metadata": {}}) is None
    assert watch.name_of(object()) is None


def test_vanished_reports_only_what_the_new_list_lacks() -> None:
    assert watch.vanished({"a", "b", "c"}, {"a", "c", "d"}) == [("DELETED", "b", None)]
    assert watch.vanished(set(), {"a"}) == []


def test_a_watch_across_namespaces_keys_objects_by_namespace_and_name() -> None:
    def pod(namespace: str, name: str, version: str = "1") -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": version}}

    client = ScriptedClient(
        # the same pod name in two namespaces (a job of one name in each); a vanishes from team-a
        lists=[
            Listing([pod("team-a", "embed-car-1"), pod("team-b", "embed-car-1")], "10"),
            Listing([pod("team-b", "embed-car-1")], "20"),
        ],
        watches=[[Gone("410")], []],
    )
    out: list[tuple[str, str, bool]] = []

    async def run() -> None:
        stream = watch.list_then_watch(client, object(), what="pods", key=watch.namespaced_key)  # type: ignore[arg-type]
        async for ev_type, key, body in stream:
            out.append((ev_type, key, body is not None))

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())
    assert out == [
        ("ADDED", "team-a/embed-car-1", True),
        ("ADDED", "team-b/embed-car-1", True),
        ("ADDED", "team-b/embed-car-1", True),
        ("DELETED", "team-a/embed-car-1", False),
    ]
    assert watch.namespaced_key({"metadata": {"name": "car-0"}}) == "car-0"  # cluster-scoped
    assert watch.namespaced_key({"metadata": {}}) is None
