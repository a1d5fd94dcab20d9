"""Agent metrics: declared once, Prometheus naming, all in the agent's own registry."""

from __future__ import annotations

import re

import pytest

from curbside_agent import metrics

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
