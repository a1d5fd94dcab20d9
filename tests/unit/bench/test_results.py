"""The results document: its schema (errors name the field), the table, the figures."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from curbside_bench import cli, kit, plots, results
from curbside_bench.results import Row, Scenario

ENV = {
    "machine": {
        "cpus": 2,
        "cpu_model": "Test CPU",
        "memory_gib": 8.0,
        "platform": "Linux",
        "load_average_start": [1.0, 1.0, 1.0],
    },
    "versions": {"kubernetes": "v1.35.4", "python": "3.11.9", "curbside": "0123456789abcdef"},
}


def _doc(rows: list[Row] | None = None) -> dict[str, Any]:
    rows = (
        rows
        if rows is not None
        else [
            Row(
                "1 Departure reaction",
                "p50 / p99",
                "s",
                [0.8, 1.6],
                [350.0, 362.0],
                [55.0, 70.0],
                "Deployment",
            )
        ]
    )
    return results.document(
        env=ENV,
        mode="quick",
        cars=1000,
        seed=1,
        started="2026-11-27T05:00:00+00:00",
        finished="2026-11-27T05:09:00+00:00",
        scenarios=[Scenario("departure", {"x": 1}, rows)],
    )


def test_document_states_machine_versions_seed_and_load() -> None:
    doc = _doc()
    assert doc["schema"] == results.SCHEMA
    assert doc["seed"] == 1
    assert doc["machine"]["cpus"] == 2
    assert len(doc["machine"]["load_average_end"]) == 3
    assert doc["versions"]["kubernetes"] == "v1.35.4"
    assert doc["scenarios"] == {"departure": {"x": 1}}
    assert doc["rows"][0]["curbside"] == [0.8, 1.6]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("seed",), "one", "'seed'"),
        (("mode",), "medium", "'mode'"),
        (("machine", "cpus"), None, "machine.'cpus'"),
        (("versions", "curbside"), 3, "versions.'curbside'"),
        (("rows", 0, "curbside"), [True], "rows[0].curbside"),
        (("rows", 0, "baseline"), {"p50": 1}, "rows[0].baseline"),
        (("rows", 0, "unit"), None, "rows[0].'unit'"),
    ],
)
def test_validate_names_the_field_that_is_wrong(path: tuple[Any, ...], value: Any, field: str) -> None:
    doc = copy.deepcopy(_doc())
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(results.ResultsError, match=field.replace("[", r"\[").replace("]", r"\]")):
        results.validate(doc)


def test_validate_reports_a_missing_field() -> None:
    doc = _doc()
    del doc["versions"]
    with pytest.raises(results.ResultsError, match="'versions' is missing"):
        results.validate(doc)


def test_markdown_table_has_one_line_per_row_and_states_where_it_ran() -> None:
    rows = [
        Row(
            "1 Departure reaction",
            "replacement bound, p50 / p99",
            "s",
            [0.81, 1.6],
            [350.0, 362.0],
            [55.0, 70.0],
            "Deployment",
        ),
        Row("5 Churn", "units lost", "units", 0.0, note="12 departures"),
        Row("2 Mass departure", "all re-placed", "s", 31.5, "> 420 (3/20 moved)", None),
    ]
    text = results.markdown(_doc(rows))
    lines = text.splitlines()
    for stated in ("2 × Test CPU", "seed 1", "v1.35.4", "`0123456789ab`", "load average 1.0"):
        assert stated in lines[0]
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) == 1 + len(rows)
    assert "| 0.81 / 1.6 | 350 / 362 | 55 / 70 |" in table[1]
    assert "> 420 (3/20 moved)" in table[2]  # rows in scenario order, whichever ran first
    assert "units lost (12 departures) | 0 | – | – |" in table[3]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "–"), (0.004, "0.004"), (12345.0, "12,345"), (1.23456, "1.23"), ([1.0, 2.5], "1 / 2.5")],
)
def test_cells_are_formatted_to_three_significant_digits(value: results.Cell, shown: str) -> None:
    assert results.fmt(value) == shown


def test_roles_split_the_fleet_and_keep_departure_groups_in_separate_zones() -> None:
    roles = [kit.role(i) for i in range(6000)]
    share = sum(r.curbside for r in roles) / len(roles)
    assert share == pytest.approx(0.6)
    for label in ("single-default", "single-shortest", "mass-default", "mass-shortest"):
        members = [i for i, r in enumerate(roles) if r.label == label]
        assert len(members) == pytest.approx(600, rel=0.05)
        zones = {i % 12 for i in members}  # the test bed's zone of car i
        assert zones == (set(range(6)) if label.startswith("single") else set(range(6, 12)))


def test_quick_plan_is_smaller_than_the_full_one() -> None:
    quick, full = cli.Plan.for_run(True, 1000), cli.Plan.for_run(False, 10_000)
    assert quick.announced < full.announced
    assert quick.baseline_wait_s < full.baseline_wait_s
    assert full.renew_s > quick.renew_s  # 10,000 scripted cars renew less often than 1,000


def test_figures_are_drawn_from_the_document_alone(tmp_path: Path) -> None:
    doc = _doc()
    summary = {"n": 3, "p50": 1.0, "p99": 2.0}
    doc["scenarios"] = {
        "departure": {
            "curbside": {
                "announced": {"replacement_bound_s": summary},
                "silent": {"replacement_bound_s": summary},
            },
            "baseline": {"single-default": {"reaction_s": {"n": 2, "p50": 350.0, "p99": 360.0}}},
        },
        "mass_departure": {
            "curbside": {"replaced_after_s": [1.0, 2.0], "displaced_pods": 2},
            "baseline": {"mass-default": {"replaced_after_s": [300.0], "displaced_pods": 4}},
        },
        "placement": {
            "curbside": {"pods": 10, "throughput": {"average": 120.0}},
            "kube_scheduler": {"throughput": {"average": 90.0}},
        },
        "footprint": {
            "timeline": [
                {"t": 0.0, "cpu_s": 1.0, "rss_mib": 80.0},
                {"t": 1.0, "cpu_s": 1.5, "rss_mib": 82.0},
            ],
            "marks": [{"t": 0.5, "phase": "idle"}],
        },
        "inference": {
            "rows": [{"model": "m", "inprocess_items_per_s": 10.0, "triton_items_per_s": 9.6, "ratio": 0.96}]
        },
    }
    drawn = plots.draw(doc, tmp_path)
    assert sorted(p.name for p in drawn) == [
        "departure.png",
        "footprint.png",
        "inference.png",
        "mass_departure.png",
        "placement.png",
    ]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in drawn)


def test_quick_and_full_runs_each_write_their_own_readme_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- bench:begin -->\nold quick\n<!-- bench:end -->\n"
        "between\n<!-- bench:full:begin -->\nold full\n<!-- bench:full:end -->\nend\n"
    )
    out = tmp_path / "docs" / "bench"
    out.mkdir(parents=True)
    full = _doc()
    full["mode"] = "full"
    cli.update_readme(readme, full, out)
    text = readme.read_text()
    assert "old quick" in text
    assert "old full" not in text
    assert text.startswith("intro\n")
    assert "\nbetween\n" in text
    assert text.endswith("end\n")
    cli.update_readme(readme, _doc(), out)
    text = readme.read_text()
    assert "old quick" not in text
    assert text.count("Raw figures: [docs/bench/results.json]") == 2


def test_a_readme_without_the_runs_markers_is_refused(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("<!-- bench:begin -->\n<!-- bench:end -->\n")
    full = _doc()
    full["mode"] = "full"
    with pytest.raises(kit.BenchError, match="bench:full:begin"):
        cli.update_readme(readme, full, tmp_path)
