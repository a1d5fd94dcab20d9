"""Agent metrics: declared once, Prometheus naming, all in the agent's own registry, served by ``serve``."""

from __future__ import annotations

import re
import socket

import httpx
import pytest

from curbside_agent import metrics
from curbside_worker import metrics as worker_metrics

NAME = re.compile(r"^curbside_agent_[a-z0-9_]+$")


@pytest.mark.parametrize("name", metrics.ALL_NAMES, ids=metrics.ALL_NAMES)
def test_names_follow_prometheus_conventions(name: str) -> None:
    assert NAME.match(name)
    assert not name.endswith("_count")
    assert not name.endswith("_sum")


def test_every_declared_name_is_registered_with_the_right_type() -> None:
    registered = {family.name: family.type for family in metrics.REGISTRY.collect()}
    declared = {name.removesuffix("_total"): name for name in metrics.ALL_NAMES}
    assert set(registered) == set(declared)
    for family, kind in registered.items():
        name = declared[family]
        assert (kind == "counter") is name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_exports_the_agent_registry_on_the_given_address() -> None:
    port = _free_port()
    stop = metrics.serve(port, "127.0.0.1")
    try:
        page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        stop()
    assert f"# TYPE {metrics.ELIGIBLE_NAME} gauge" in page
    assert "curbside_worker_" not in page
    with pytest.raises(httpx.ConnectError):  # stopped: nothing listens any more
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_serve_puts_several_registries_on_one_page() -> None:
    """The simulator's page: its agents' and its workers' metrics together."""
    port = _free_port()
    stop = metrics.serve(port, "127.0.0.1", worker_metrics.REGISTRY, metrics.REGISTRY)
    try:
        page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        stop()
    for name in (*metrics.ALL_NAMES, *worker_metrics.ALL_NAMES):
        assert f"# TYPE {name} " in page, name
