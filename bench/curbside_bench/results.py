"""The results of one bench run: where it ran, its schema, and the markdown table.

Why this exists: figures without the machine, the versions, the seed and the load beside them
cannot be compared or trusted; every run writes them into ``results.json`` with the same
shape, ``validate`` checks that shape (naming the field that is wrong), and ``markdown``
renders the table the README shows from the rows alone, so the README never carries a number
that the JSON does not.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = 1
Cell = float | list[float] | str | None
"""A table cell: a figure, a pair like p50 / p99, a short text, or nothing measured."""


class ResultsError(ValueError):
    """A results document does not have the expected shape; the message names the field."""


@dataclass(frozen=True)
class Row:
    """One line of the table: a measure of one scenario for Curbside and its baseline."""

    scenario: str
    measure: str
    unit: str
    curbside: Cell
    baseline: Cell = None
    baseline_shortest: Cell = None
    baseline_is: str = ""
    note: str = ""


@dataclass
class Scenario:
    """What a scenario module returns: raw figures for the JSON and rows for the table."""

    name: str
    figures: dict[str, Any]
    rows: list[Row] = field(default_factory=list)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_sha(repo: Path) -> str:
    """The checkout's commit, with ``-dirty`` when tracked files differ from it."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=repo, check=False).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def environment(*, repo: Path, kubernetes: str) -> dict[str, Any]:
    """The machine and versions a run states next to its figures."""
    memory = 0
    with contextlib.suppress(ValueError, OSError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "machine": {
            "cpus": os.cpu_count() or 0,
            "cpu_model": cpu_model(),
            "memory_gib": round(memory / 2**30, 1),
            "platform": platform.platform(),
            "load_average_start": load_average(),
        },
        "versions": {
            "kubernetes": kubernetes,
            "python": sys.version.split()[0],
            "curbside": git_sha(repo),
        },
    }


def document(
    *,
    env: Mapping[str, Any],
    mode: str,
    cars: int,
    seed: int,
    started: str,
    finished: str,
    scenarios: Sequence[Scenario],
) -> dict[str, Any]:
    """The results document (validated before it is returned)."""
    machine = {**env["machine"], "load_average_end": load_average()}
    doc = {
        "schema": SCHEMA,
        "mode": mode,
        "cars": cars,
        "seed": seed,
        "started": started,
        "finished": finished,
        "machine": machine,
        "versions": dict(env["versions"]),
        "scenarios": {s.name: s.figures for s in scenarios},
        # Scenario numbers lead the rows' names: the table reads 1, 2, 3 ... whatever ran first.
        "rows": sorted((asdict(r) for s in scenarios for r in s.rows), key=lambda r: r["scenario"][:2]),
    }
    validate(doc)
    return doc


_TOP: dict[str, type | tuple[type, ...]] = {
    "schema": int,
    "mode": str,
    "cars": int,
    "seed": int,
    "started": str,
    "finished": str,
    "machine": dict,
    "versions": dict,
    "scenarios": dict,
    "rows": list,
}
_MACHINE = {"cpus": int, "cpu_model": str, "load_average_start": list, "load_average_end": list}
_VERSIONS = {"kubernetes": str, "python": str, "curbside": str}
_ROW = {"scenario": str, "measure": str, "unit": str, "baseline_is": str, "note": str}


def _check(obj: Mapping[str, Any], spec: Mapping[str, type | tuple[type, ...]], where: str) -> None:
    for key, kind in spec.items():
        if key not in obj:
            raise ResultsError(f"field {where}{key!r} is missing")
        if not isinstance(obj[key], kind) or isinstance(obj[key], bool):
            raise ResultsError(f"field {where}{key!r}: expected {kind}, got {type(obj[key]).__name__}")


def _check_cell(value: Any, where: str) -> None:
    if value is None or isinstance(value, str):
        return
    numbers = value if isinstance(value, list) else [value]
    if not numbers or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in numbers):
        raise ResultsError(f"field {where}: expected a number, a list of numbers, a text or null")


def validate(doc: Mapping[str, Any]) -> None:
    """Raise ``ResultsError`` naming the first field that does not fit the schema."""
    _check(doc, _TOP, "")
    if doc["schema"] != SCHEMA:
        raise ResultsError(f"field 'schema': expected {SCHEMA}, got {doc['schema']}")
    if doc["mode"] not in ("quick", "full"):
        raise ResultsError(f"field 'mode': expected 'quick' or 'full', got {doc['mode']!r}")
    _check(doc["machine"], _MACHINE, "machine.")
    _check(doc["versions"], _VERSIONS, "versions.")
    for i, row in enumerate(doc["rows"]):
        if not isinstance(row, Mapping):
            raise ResultsError(f"field rows[{i}]: expected an object")
        _check(row, _ROW, f"rows[{i}].")
        for key in ("curbside", "baseline", "baseline_shortest"):
            if key not in row:
                raise ResultsError(f"field rows[{i}].{key!r} is missing")
            _check_cell(row[key], f"rows[{i}].{key}")


def fmt(value: Cell) -> str:
    """A cell as the table shows it: 3 significant digits, pairs joined by ' / '."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " / ".join(fmt(v) for v in value)
    if value != 0 and (abs(value) >= 1000 or abs(value) < 0.01):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2g}"
    return f"{value:.3g}"


def markdown(doc: Mapping[str, Any]) -> str:
    """The results table and the line that says where and how it was measured."""
    m, v = doc["machine"], doc["versions"]
    lines = [
        f"Measured {doc['finished'][:16].replace('T', ' ')} UTC, `--{doc['mode']}`, {doc['cars']:,} cars, "
        f"seed {doc['seed']}: {m['cpus']} × {m['cpu_model']}, load average "
        f"{m['load_average_start'][0]:.1f} → {m['load_average_end'][0]:.1f} (the machine is shared); "
        f"Kubernetes {v['kubernetes']}, Python {v['python']}, Curbside `{v['curbside'][:12]}`.",
        "",
        "| Scenario | Measure | Curbside | Baseline | Baseline, shortest tolerations | Baseline is | Unit |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in doc["rows"]:
        measure = row["measure"] + (f" ({row['note']})" if row["note"] else "")
        lines.append(
            f"| {row['scenario']} | {measure} | {fmt(row['curbside'])} | {fmt(row['baseline'])} | "
            f"{fmt(row['baseline_shortest'])} | {row['baseline_is']} | {row['unit']} |"
        )
    return "\n".join(lines) + "\n"
