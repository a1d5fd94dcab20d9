"""The chart as the tests see it: helm from the test bed's toolchain, rendered documents.

Why this exists: the unit tests (lint, template, static checks) and the cluster tests
(install, upgrade, uninstall, dry runs) render the same chart with the same helm, the one the
test bed builds from pinned Go modules (``curbside testbed build``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from curbside_testbed import build

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "curbside"
SCENARIOS = sorted(CHART.glob("ci/*-values.yaml"))
"""The chart's ci/ scenarios; the default values are the scenario ``None``."""

WORKLOAD_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob", "ReplicaSet"}


def helm_binary() -> Path:
    """The test bed's helm; skips when it is not built yet (``make test`` builds it first)."""
    path = build.toolchain().binary("helm")
    if not path.is_file():
        pytest.skip(f"{path} not built: run 'make testbed-build' (make test does)")
    return path


def helm(
    *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, check=check, timeout=120, env=env
    )


def values_args(scenario: Path | None, sets: dict[str, str] | None = None) -> list[str]:
    args = ["-f", str(scenario)] if scenario else []
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


def render(
    scenario: Path | None = None,
    *,
    release: str = "curbside",
    namespace: str = "curbside-system",
    sets: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``helm template`` of the chart (hooks and tests included): every document, parsed."""
    out = helm("template", release, str(CHART), "--namespace", namespace, *values_args(scenario, sets)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def pod_templates(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(``Kind/name``, pod spec holder with metadata and spec) of every pod the chart renders."""
    pods = []
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "Pod":
            pods.append((name, doc))
        elif doc["kind"] in WORKLOAD_KINDS:
            template = doc["spec"]["template"]
            if doc["kind"] == "CronJob":
                template = doc["spec"]["jobTemplate"]["spec"]["template"]
            pods.append((name, template))
    return pods


def scenario_id(scenario: Path | None) -> str:
    return scenario.name.removesuffix("-values.yaml") if scenario else "default"
