"""Dashboards as code: generated fresh, every query built from declared metric names.

The chart's ``dashboards/*.json`` must be exactly what ``curbside_gen.dashboards``
builds (``make verify`` runs the same check); every panel query names only metrics that
``curbside_operator.metrics``, the agent's or the worker's metric module declares (the
dashboards import their ``*_NAME`` constants, so a rename fails here, not in Grafana); every
declared metric is on a dashboard; every panel says what it shows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from curbside_agent import metrics as agent_metrics
from curbside_gen import dashboards
from curbside_operator import metrics as m
from curbside_worker import metrics as worker_metrics

REPO = Path(__file__).resolve().parents[3]
DECLARED = {
    v
    for module in (m, agent_metrics, worker_metrics)
    for k, v in vars(module).items()
    if k.endswith("_NAME") and isinstance(v, str)
}


def test_chart_copies_are_fresh() -> None:
    assert dashboards.generate(REPO, check=True) == []


def test_three_dashboards_with_distinct_uids() -> None:
    docs = [json.loads(dashboards.render(name)) for name in dashboards.DASHBOARDS]
    assert [d["uid"] for d in docs] == list(dashboards.DASHBOARDS)
    assert len({d["title"] for d in docs}) == 3


@pytest.mark.parametrize("name", list(dashboards.DASHBOARDS))
def test_panels_query_declared_metrics(name: str) -> None:
    doc = json.loads(dashboards.render(name))
    queries = dashboards.queries(doc)
    assert queries
    used: set[str] = set()
    for title, expr in queries:
        names = {re.sub(r"_(bucket|count|sum)$", "", n) for n in re.findall(r"\bcurbside_[a-z0-9_]+", expr)}
        assert names, f"{name} / {title}: no metric in {expr}"
        assert names <= DECLARED, f"{name} / {title}: {names - DECLARED} in {expr}"
        assert expr.count("(") == expr.count(")"), expr
        assert expr.count("{") == expr.count("}"), expr
        used |= names
    assert used


def test_every_declared_metric_is_on_a_dashboard() -> None:
    used = {
        re.sub(r"_(bucket|count|sum)$", "", n)
        for name in dashboards.DASHBOARDS
        for _, expr in dashboards.queries(json.loads(dashboards.render(name)))
        for n in re.findall(r"\bcurbside_[a-z0-9_]+", expr)
    }
    assert used == DECLARED


@pytest.mark.parametrize("name", list(dashboards.DASHBOARDS))
def test_panels_are_described_and_use_the_datasource_variable(name: str) -> None:
    doc = json.loads(dashboards.render(name))
    assert [v["name"] for v in doc["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["title"]
        assert panel.get("description"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert [t["refId"] for t in panel["targets"]] == [chr(65 + i) for i in range(len(panel["targets"]))]
