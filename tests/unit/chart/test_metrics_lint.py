"""The metrics lint: every Curbside metric declared once, named the Prometheus way.

Covers the three metric modules (operator, agent, worker), read from their registries, so
what is checked is what is exported: ``curbside_`` snake_case names, ``_total`` on counters
and only on counters, base-unit suffixes (``_seconds``, ``_bytes``) on histograms and on any
name that measures time, help text, snake_case labels, no name twice, each module's
``*_NAME`` constants matching its registry, and no metric created anywhere else in the code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from curbside_agent import metrics as agent_metrics
from curbside_operator import metrics as operator_metrics
from curbside_worker import metrics as worker_metrics

REPO = Path(__file__).resolve().parents[3]
MODULES: dict[str, ModuleType] = {
    "operator": operator_metrics,
    "agent": agent_metrics,
    "worker": worker_metrics,
}
PREFIXES = {"operator": "curbside_", "agent": "curbside_agent_", "worker": "curbside_worker_"}
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
UNIT_SUFFIXES = ("_seconds", "_bytes", "_ratio", "_celsius", "_volts", "_watts", "_joules", "_meters")
NON_BASE_UNITS = re.compile(
    r"_(milli|micro|nano)?(ms|us|ns|millis|milliseconds|minutes|hours|days|kb|mb|gb)\b"
)
TIME_WORDS = re.compile(r"(^|_)(duration|latency|reaction|age|elapsed)(_|$)")
CONSTRUCTORS = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}


def families(module: ModuleType) -> list[Metric]:
    registry: CollectorRegistry = module.REGISTRY
    return list(registry.collect())


def exported_name(family: Metric) -> str:
    """The name a user queries: counters with their ``_total``."""
    return family.name + "_total" if family.type == "counter" else family.name


ALL = [(m, f) for m, module in MODULES.items() for f in families(module)]


@pytest.mark.parametrize(("module", "family"), ALL, ids=[exported_name(f) for _, f in ALL])
def test_naming(module: str, family: Metric) -> None:
    name = exported_name(family)
    assert SNAKE.match(name), f"{name}: not snake_case"
    assert name.startswith(PREFIXES[module]), f"{name}: {module} metrics start with {PREFIXES[module]}"
    if family.type == "counter":
        assert name.endswith("_total")
        assert not family.name.endswith("_total"), f"{name}: declared with _total twice"
    else:
        assert not name.endswith("_total"), f"{name}: only counters end in _total"
    if family.type in ("histogram", "summary") or TIME_WORDS.search(name):
        base = name.removesuffix("_total")
        assert base.endswith(UNIT_SUFFIXES), f"{name}: needs a base-unit suffix ({', '.join(UNIT_SUFFIXES)})"
    assert not NON_BASE_UNITS.search(name), f"{name}: use base units (seconds, bytes)"
    assert family.documentation[:1].isupper() or family.documentation[:1].isdigit(), f"{name}: help text"
    assert family.documentation.endswith((".", ")")), f"{name}: help text is a sentence"


@pytest.mark.parametrize(("module", "family"), ALL, ids=[exported_name(f) for _, f in ALL])
def test_labels(module: str, family: Metric) -> None:
    collector = next(
        c
        for c in vars(MODULES[module]).values()
        if getattr(c, "_name", None) == family.name and hasattr(c, "_labelnames")
    )
    for label in collector._labelnames:
        assert SNAKE.match(label), f"{exported_name(family)}: label {label!r}"
        assert label not in (
            "le",
            "quantile",
            "instance",
        ), f"{exported_name(family)}: reserved label {label!r}"


def test_no_name_twice() -> None:
    names = [exported_name(f) for _, f in ALL]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_name_constants_match_the_registry(module: str) -> None:
    constants = {v for k, v in vars(MODULES[module]).items() if k.endswith("_NAME") and isinstance(v, str)}
    exported = {exported_name(f) for f in families(MODULES[module])}
    assert constants == exported
    listed = getattr(MODULES[module], "ALL_NAMES", None)
    if listed is not None:
        assert set(listed) == exported


def test_metrics_are_created_only_in_the_metric_modules() -> None:
    """No ``Counter(...)`` and friends outside the three modules: each metric is declared once."""
    allowed = {Path(m.__file__).resolve() for m in MODULES.values() if m.__file__}
    offenders = []
    for root in ("api", "operator", "agent", "worker", "tools", "testbed", "bench"):
        assert (REPO / root).is_dir(), root
        for path in (REPO / root).rglob("*.py"):
            if path.resolve() in allowed:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            imported = {
                alias.asname or alias.name
                for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus_client")
                for alias in node.names
            }
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                called = (
                    func.attr
                    if isinstance(func, ast.Attribute)
                    and isinstance(func.value, ast.Name)
                    and func.value.id == "prometheus_client"
                    else func.id
                    if isinstance(func, ast.Name) and func.id in imported
                    else None
                )
                if called in CONSTRUCTORS:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {called}(...)")
    assert not offenders, offenders
