"""Grafana dashboards as code: built with grafana-foundation-sdk, written into the chart.

Why this exists: dashboards are part of the product (fleet engineers live in Grafana), and
hand-edited JSON breaks silently when a metric is renamed. Every query here is built from the
``*_NAME`` constants of the ``metrics`` modules of ``curbside_operator``, ``curbside_agent`` and
``curbside_worker``, so a rename breaks ``make generate`` (and the tests) instead of emptying a
panel. ``python -m curbside_gen.dashboards`` writes ``charts/curbside/dashboards/<name>.json``
(through ``curbside_gen.output``); ``--check`` fails when one is stale. The chart ships each
file as a ConfigMap for the Grafana sidecar.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from curbside_gen import output
from curbside_gen.dashboards import fleet, jobs, operator_health

DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "curbside-fleet": fleet.dashboard,
    "curbside-jobs": jobs.dashboard,
    "curbside-operator": operator_health.dashboard,
}
"""File stem (and dashboard uid) → builder."""

CHART_DIR = Path("charts") / "curbside" / "dashboards"


def render(name: str) -> str:
    """The dashboard's JSON text: stable key order, two-space indent, trailing newline."""
    doc = json.loads(json.dumps(DASHBOARDS[name]().build(), cls=JSONEncoder))
    return json.dumps(_numbered(doc), indent=2, sort_keys=True) + "\n"


def _numbered(doc: dict[str, Any]) -> dict[str, Any]:
    """Panel ids 1, 2, ... and per-panel query refIds A, B, ...: the builders leave every row's
    id at 0 and every refId empty, which Grafana would otherwise have to repair on load."""
    for number, panel in enumerate(doc.get("panels", []), start=1):
        panel["id"] = number
        for index, target in enumerate(panel.get("targets", [])):
            target["refId"] = chr(ord("A") + index)
    return doc


def queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (panel title, PromQL expression) of a rendered dashboard."""
    return [
        (panel.get("title", ""), target["expr"])
        for panel in doc.get("panels", [])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def outputs(root: Path) -> dict[Path, str]:
    """Every generated dashboard file under the checkout ``root`` and its text."""
    return {root / CHART_DIR / f"{name}.json": render(name) for name in DASHBOARDS}


def generate(root: Path, *, check: bool) -> list[str]:
    """Write (or with ``check`` only compare) the dashboard files; return what differed. JSON has
    no comments for ``output.HEADER``: every ``*.json`` in the chart's dashboards/ is generated."""
    return output.sync(root, outputs(root), check=check, pattern="*.json")
