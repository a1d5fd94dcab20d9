"""The demo's moving parts: child processes, kubectl, the jobs as applied, live progress lines.

Why this exists: ``make demo`` starts Curbside the way a user would, as separate processes
(PyTriton, the operator, the fleet simulator) and ``kubectl apply``: the test bed's tooling
imports neither the operator nor the agent, so the demo runs the operator's own command. This
module holds what ``demo.py`` needs for that: ``Child`` (a process in its own group, its
output in a log file, stopped by ``procs.stop``), ``until`` (waits that fail fast when a
child dies), the example jobs rewritten to write their results under the demo's folder, and
``Progress`` (one bar per job, redrawn in place on a terminal, a plain line now and then in
a log).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import httpx
import yaml

from curbside_testbed import bed, build, procs

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = (REPO / "examples" / "05-seti-spike-search.yaml", REPO / "examples" / "06-minilm-embed.yaml")
JOBS = "/apis/curbside.dev/v1alpha1/namespaces/{namespace}/inferencejobs"
BAR = 28


class DemoError(RuntimeError):
    """Something the demo needs did not happen; the message says what (and shows logs)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Child:
    """A child process in its own process group, stdout and stderr in ``log``."""

    def __init__(self, name: str, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None):
        self.name, self.log = name, log
        with log.open("ab") as out:
            self.process = procs.start(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def last_line(self, prefix: str) -> str:
        """The log's last line starting with ``prefix`` ('' if none)."""
        with contextlib.suppress(OSError), self.log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16_384))
            for line in reversed(f.read().decode(errors="replace").splitlines()):
                if line.startswith(prefix):
                    return line
        return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, SIGKILL after ``timeout``, then SIGKILL to whatever is left in its group."""
        return procs.stop(self.process, timeout=timeout)


def until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    children: Sequence[Child] = (),
    every: float = 0.5,
) -> None:
    """Poll ``ready`` until true; ``DemoError`` on timeout or when one of ``children`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        for child in children:
            if not child.alive:
                raise DemoError(
                    f"{child.name} exited ({child.process.returncode}) while waiting for {what}; "
                    f"last lines of {child.log}:\n{child.tail()}"
                )
        with contextlib.suppress(httpx.HTTPError, OSError):
            if ready():
                return
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def answers(url: str) -> bool:
    return httpx.get(url, timeout=5).status_code == 200


def kubectl(tb: bed.TestBed, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
    """Run kubectl (the test bed's own build if there is one) against ``tb``; its stdout."""
    own = build.toolchain().bin_dir / "kubectl"
    binary = str(own) if own.exists() else shutil.which("kubectl")
    if binary is None:
        raise DemoError("kubectl not found (neither built into the test bed's cache nor on PATH)")
    done = subprocess.run(
        [binary, "--kubeconfig", str(tb.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise DemoError(f"kubectl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def prepared_job(example: Path, *, results: Path, unit_timeout_s: int) -> tuple[str, dict[str, Any]]:
    """The example job with ``spec.output.uri`` under ``results`` and a short unit timeout (a car
    that vanishes and comes back before the operator notices gives its unit back that soon)."""
    doc = yaml.safe_load(example.read_text())
    doc["spec"]["output"]["uri"] = results.as_uri()
    doc["spec"].setdefault("unitTimeoutSeconds", unit_timeout_s)
    return str(doc["metadata"]["name"]), doc


def condition(job: Mapping[str, Any], kind: str) -> dict[str, Any]:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


def finished(job: Mapping[str, Any]) -> str | None:
    """'Succeeded' or 'Failed' once the job ended, else None."""
    for kind in ("Failed", "Succeeded"):
        if condition(job, kind).get("status") == "True":
            return kind
    return None


def metric(text: str, name: str) -> dict[str, float]:
    """Samples of metric ``name`` in a Prometheus text page: labels string -> value."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if m:
            found[m.group(1) or ""] = float(m.group(2))
    return found


def fleet_line(sim_line: str) -> str:
    """The simulator's last report, shortened: simulated time, cars by state, eligible, workers."""
    parts = [p.strip() for p in sim_line.removeprefix("[sim] ").split("|")]
    if len(parts) < 3:
        return "fleet: starting"
    workers = next((p for p in parts if p.startswith("workers ")), "")
    killed = re.search(r"killed (\d+)", workers)
    tail = f" | workers killed mid-unit {killed.group(1)}" if killed else ""
    return f"fleet: {parts[0]} | {parts[1]} | {parts[2]}{tail}"


class Progress:
    """Live lines, one per job plus the fleet: redrawn in place on a terminal; in a log, a block
    of plain lines every ``log_every`` seconds."""

    def __init__(self, names: Sequence[str], *, out: TextIO = sys.stdout, log_every: float = 15.0) -> None:
        self.names, self.out, self.log_every = list(names), out, log_every
        self.tty = out.isatty()
        self.drawn = 0
        self.last_log = -math.inf  # the first show always prints (monotonic time may start near 0)

    @staticmethod
    def job_line(name: str, job: Mapping[str, Any] | None) -> str:
        status = (job or {}).get("status") or {}
        units = status.get("units") or {}
        total, done = int(units.get("total") or 0), int(units.get("succeeded") or 0)
        filled = BAR * done // total if total else 0
        state = finished(job or {}) or condition(job or {}, "Succeeded").get("reason") or "Submitted"
        return (
            f"{name:18} [{'#' * filled}{'.' * (BAR - filled)}] {done:>4}/{total:<4} units"
            f"  cars busy {int(status.get('carsInUse') or 0):>3}"
            f"  departures handled {int(status.get('departuresHandled') or 0):>4}  {state}"
        )

    def show(self, jobs: Mapping[str, Mapping[str, Any]], fleet: str, elapsed: float) -> None:
        lines = [self.job_line(name, jobs.get(name)) for name in self.names]
        lines.append(f"{fleet}  [{elapsed:.0f}s]")
        if self.tty:
            width = shutil.get_terminal_size().columns - 1
            up = f"\x1b[{self.drawn}F" if self.drawn else ""
            self.out.write(up + "".join(f"\x1b[2K{line[:width]}\n" for line in lines))
            self.drawn = len(lines)
        elif time.monotonic() - self.last_log >= self.log_every or all(finished(j) for j in jobs.values()):
            self.out.write("".join(f"  {line}\n" for line in lines))
            self.last_log = time.monotonic()
        self.out.flush()

    def release(self) -> None:
        """Stop redrawing: what follows is printed below the last lines."""
        self.drawn = 0
