"""``make demo``'s pieces that need no cluster: the jobs as applied, metrics, progress lines, children."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from curbside_testbed import demo, demo_run

SIM_LINE = (
    "[sim] 2026-11-27T08:11Z x300 | Asleep 97 Charging 69 Driving 17 | eligible 51 | events 40/s steps 30/s"
    " | queued 0 wait<=0.01s cpu 20% rss 300MiB | workers 8 waiting 2 started 40 killed 12 stopped 3"
)


def job(done: int, total: int, *, reason: str = "UnitsRunning", ended: str | None = None) -> dict[str, Any]:
    conditions = [{"type": "Succeeded", "status": "True" if ended else "False", "reason": reason}]
    status = {"units": {"total": total, "succeeded": done}, "carsInUse": 7, "departuresHandled": 3}
    return {"metadata": {"name": "j"}, "status": {**status, "conditions": conditions}}


def test_the_examples_are_applied_with_results_under_the_demo_folder(tmp_path: Path) -> None:
    names = []
    for example in demo_run.EXAMPLES:
        name, doc = demo_run.prepared_job(example, results=tmp_path / "results", unit_timeout_s=60)
        names.append(name)
        assert doc["spec"]["output"]["uri"] == (tmp_path / "results").as_uri()
        assert doc["spec"]["unitTimeoutSeconds"] == 60
        assert doc["spec"]["model"]["name"] == name
    assert names == ["seti-spike-search", "minilm-embed"]


def test_metrics_and_the_fleet_line_are_read_from_text() -> None:
    page = (
        "# HELP curbside_departures_handled_total x\n"
        'curbside_departures_handled_total{reason="Driving"} 4.0\n'
        'curbside_departures_handled_total{reason="Asleep"} 2.0\n'
        "curbside_placements_total 9.0\n"
    )
    assert demo_run.metric(page, "curbside_departures_handled_total") == {
        '{reason="Driving"}': 4.0,
        '{reason="Asleep"}': 2.0,
    }
    assert demo_run.metric(page, "curbside_placements_total") == {"": 9.0}
    assert demo._label('{reason="Driving"}') == "Driving"
    assert demo_run.fleet_line(SIM_LINE) == (
        "fleet: 2026-11-27T08:11Z x300 | Asleep 97 Charging 69 Driving 17 | eligible 51"
        " | workers killed mid-unit 12"
    )
    assert demo_run.fleet_line("") == "fleet: starting"


def test_progress_bars_say_units_cars_and_departures() -> None:
    line = demo_run.Progress.job_line("seti-spike-search", job(50, 200))
    assert "[#######.....................]   50/200  units" in line
    assert "cars busy   7  departures handled    3  UnitsRunning" in line
    assert demo_run.Progress.job_line("x", None).endswith("Submitted")
    assert demo_run.finished(job(200, 200, reason="Completed", ended="Succeeded")) == "Succeeded"
    out = io.StringIO()
    progress = demo_run.Progress(["j"], out=out, log_every=3600)
    progress.show({"j": job(1, 2)}, "fleet: x", 1.0)
    progress.show({"j": job(2, 2)}, "fleet: x", 2.0)  # not yet due in a log...
    progress.show(
        {"j": job(2, 2, reason="Completed", ended="Succeeded")}, "fleet: x", 3.0
    )  # ...but the end is
    assert out.getvalue().count("units") == 2


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_lines_are_redrawn_in_place() -> None:
    out = Tty()
    progress = demo_run.Progress(["j"], out=out)
    progress.show({"j": job(1, 2)}, "fleet: x", 1.0)
    assert "\x1b[2F" not in out.getvalue()
    progress.show({"j": job(2, 2)}, "fleet: x", 2.0)
    assert out.getvalue().count("\x1b[2F") == 1


def test_a_child_is_stopped_with_its_process_group_and_a_dead_one_fails_a_wait(tmp_path: Path) -> None:
    child = demo_run.Child(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], log=tmp_path / "a"
    )
    assert child.alive
    assert child.stop(timeout=5) is not None
    assert not child.alive
    quitter = demo_run.Child(
        "quitter", [sys.executable, "-c", "print('[sim] bye'); raise SystemExit(3)"], log=tmp_path / "b"
    )
    with pytest.raises(demo_run.DemoError, match=r"quitter exited \(3\)[\s\S]*bye"):
        demo_run.until(lambda: False, timeout=30, what="nothing", children=[quitter])
    assert quitter.last_line("[sim] ") == "[sim] bye"
    with pytest.raises(demo_run.DemoError, match="timed out"):
        demo_run.until(lambda: False, timeout=0.2, what="nothing", every=0.05)
