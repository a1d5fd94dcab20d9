"""A real Prometheus for the tests: the binaries, one server on loopback, its HTTP API.

Why this exists: the dashboards and alerts are only worth shipping if a real Prometheus
accepts their queries and finds data for them. ``make testbed-build`` builds ``prometheus``
and ``promtool`` from a pinned Go module into the test bed's cache; this module runs
one server with its TSDB in a temporary folder, scraping the given loopback targets, and asks
it questions through ``/api/v1``. It also turns a dashboard panel's query into what Grafana
would send (``$__rate_interval`` filled in the way Grafana computes it).
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from curbside_gen import dashboards
from curbside_testbed import prombuild
from tests.support import wait


def binary(name: str) -> str:
    """``prometheus`` or ``promtool`` from the test bed's cache; a failure that says how to build it."""
    found = prombuild.binary(name)
    assert found.is_file(), f"{found} not built: run 'make testbed-build' (make test does)"
    return str(found)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Panel:
    """One query of one panel of a generated dashboard."""

    dashboard: str
    title: str
    expr: str
    instant: bool

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.title}: {self.expr}"


def panels() -> list[Panel]:
    """Every query of every panel of every generated dashboard, as the chart ships them."""
    found = []
    for name in dashboards.DASHBOARDS:
        doc = json.loads(dashboards.render(name))
        for panel in doc["panels"]:
            for target in panel.get("targets", []):
                if "expr" in target:
                    found.append(Panel(name, panel["title"], target["expr"], bool(target.get("instant"))))
    return found


def grafana_expr(expr: str, *, step_s: float, scrape_s: float) -> str:
    """``expr`` with Grafana's ``$__rate_interval``: max(step + scrape interval, 4 × scrape interval)."""
    rate_interval = f"{max(step_s + scrape_s, 4 * scrape_s):g}s"
    filled = expr.replace("$__rate_interval", rate_interval)
    assert "$" not in filled, f"a Grafana variable this test does not fill in: {expr}"
    return filled


def rule_groups(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule file inside the chart's PrometheusRule (what the Prometheus Operator would load)."""
    rules = [d for d in rendered if d["kind"] == "PrometheusRule"]
    assert len(rules) == 1, [d["metadata"]["name"] for d in rules]
    return {"groups": rules[0]["spec"]["groups"]}


def has_data(result: Mapping[str, Any]) -> bool:
    """Does a query's answer hold at least one finite sample (NaN is Grafana's "No data" too)?"""
    values: Iterator[str]
    if result["resultType"] == "matrix":
        values = (v for series in result["result"] for _, v in series["values"])
    elif result["resultType"] == "vector":
        values = (series["value"][1] for series in result["result"])
    else:  # scalar or string
        values = iter([result["result"][1]])
    return any(math.isfinite(float(v)) for v in values)


class Prometheus:
    """``prometheus`` on a free loopback port, scraping ``targets`` (job name → host:port)."""

    def __init__(self, folder: Path, targets: Mapping[str, str], *, scrape_s: float) -> None:
        self.folder, self.scrape_s = folder, scrape_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        interval = f"{scrape_s:g}s"
        config = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            # honor_labels as the chart's ServiceMonitor: curbside_job_units has its own `job` label.
            "scrape_configs": [
                {"job_name": job, "honor_labels": True, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = folder / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self, *, timeout: float = 60) -> None:
        argv = [
            binary("prometheus"),
            f"--config.file={self.folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def ready() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, f"prometheus exited:\n{self.log.read_text()[-3000:]}"
            try:
                return self.http.get("/-/ready").status_code == 200
            except httpx.HTTPError:
                return False

        wait.until(ready, timeout=timeout, what="prometheus ready")

    def stop(self) -> None:
        self.http.close()
        if self.proc is not None:
            wait.terminate(self.proc, timeout=20)

    def _data(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        r = self.http.post(f"/api/v1/{path}", data=dict(params))
        body = r.json()
        assert r.status_code == 200, f"{params}: {r.status_code} {body}"
        assert body["status"] == "success", f"{params}: {body}"
        data: dict[str, Any] = body["data"]
        return data

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        return self._data("query", {"query": expr, "time": at if at is not None else time.time()})

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> dict[str, Any]:
        return self._data("query_range", {"query": expr, "start": start, "end": end, "step": step_s})

    def panel(self, panel: Panel, *, since: float, step_s: float) -> dict[str, Any]:
        """What Grafana would get for ``panel`` over [since, now]: an instant query for a stat or
        bar gauge, a range query otherwise."""
        expr = grafana_expr(panel.expr, step_s=step_s, scrape_s=self.scrape_s)
        if panel.instant:
            return self.query(expr)
        return self.query_range(expr, since, time.time(), step_s)

    def targets_up(self) -> dict[str, bool]:
        """Scrape job → whether its last scrape succeeded."""
        active = self._get("targets")["activeTargets"]
        return {t["labels"]["job"]: t["health"] == "up" for t in active}

    def _get(self, path: str) -> dict[str, Any]:
        r = self.http.get(f"/api/v1/{path}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        return data


def check_rules(groups: Mapping[str, Any], folder: Path) -> subprocess.CompletedProcess[str]:
    """``promtool check rules`` on ``groups`` written as a rule file."""
    path = folder / "curbside-rules.yml"
    path.write_text(yaml.safe_dump(dict(groups), sort_keys=False))
    return subprocess.run(
        [binary("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def metric_names(expr: str) -> set[str]:
    """Curbside metric names in a PromQL expression (histogram series reduced to their base)."""
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in re.findall(r"\bcurbside_[a-z0-9_]+", expr)}
