"""``make demo``: a simulated fleet on a real control plane runs both example jobs, checked.

Why this exists: the README promises one command that shows what Curbside is for. It brings
up the ``demo`` test bed with 200 car Nodes, then starts everything as a user would, each in
its own process: a PyTriton server with both models, the operator (ledger and dispatcher
inside), and the fleet simulator, whose 200 cars follow seeded mobility traces on a fast
clock and run the real worker for every inference pod the operator places on them (killed
mid-unit when the car drives away). Both example jobs go in with ``kubectl apply``; one live
line per job shows units done, cars busy and departures handled. At the end: a summary
(units, re-runs, departures, throughput, where the results are) and a check of every result
against the known answers (``curbside_testbed.checks``, run as its own process: this
package imports neither the operator nor the agent). Every process is stopped and the test
bed taken down at the end (``--keep`` leaves the bed up); ``--time-limit`` bounds the run.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from curbside_testbed import bed, build, fleet
from curbside_testbed.demo_run import (
    EXAMPLES,
    JOBS,
    REPO,
    Child,
    DemoError,
    Progress,
    answers,
    condition,
    finished,
    fleet_line,
    free_port,
    kubectl,
    metric,
    prepared_job,
    until,
)

MODELS = ("seti-spike-search", "minilm-embed")
NAMESPACE = "default"


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def summary(tb: bed.TestBed) -> str:
    """The fleet as the API server sees it: cars, regions, hardware."""
    with tb.http() as client:
        cars = fleet.list_cars(client)
        version = client.get("/version").json()["gitVersion"]
    labels = [n["metadata"]["labels"] for n in cars]
    regions = collections.Counter(lb["topology.kubernetes.io/region"] for lb in labels)
    hardware = collections.Counter(lb["node.kubernetes.io/instance-type"] for lb in labels)
    tops = sum(int(lb["curbside.dev/accelerator-tops"]) for lb in labels)
    return "\n".join(
        [
            f"  Kubernetes {version} at {tb.server}: {len(cars)} car Nodes "
            f"({sum(1 for n in cars if fleet.is_ready(n))} Ready), {tops:,} INT8 TOPS in all",
            f"  regions   {', '.join(f'{r} {c}' for r, c in sorted(regions.items()))}",
            f"  hardware  {', '.join(f'{h} {c}' for h, c in sorted(hardware.items()))}",
        ]
    )


def start_processes(
    args: argparse.Namespace, tb: bed.TestBed, work: Path, children: list[Child]
) -> tuple[str, Child]:
    """Triton, the operator and the simulator, each ready: the operator's metrics URL, the simulator."""
    logs = work / "logs"
    python = sys.executable
    grpc, http, dispatcher, metrics = (free_port() for _ in range(4))
    serve = ["-m", "curbside_testbed.serve", f"--models={','.join(MODELS)}", f"--grpc-port={grpc}"]
    serve += [f"--http-port={http}", "--exit-timeout=1", "--torch-threads=1"]
    triton = Child(
        "tritonserver", [python, *serve, f"--log-file={logs / 'triton.log'}"], log=logs / "serve.log"
    )
    children.append(triton)
    clock = work / "clock.json"
    sim_kubeconfig = tb.kubeconfig_for("curbside-simulator", groups=("system:masters",))
    start = datetime.now(UTC).replace(microsecond=0).isoformat()
    argv = ["--cars", str(args.cars), "--speed", str(args.speed), "--seed", str(args.seed), "--start", start]
    argv += ["--kubeconfig", str(sim_kubeconfig), "--battery-step", "5", "--report-seconds", "5"]
    argv += ["--clock-file", str(clock), "--triton-url", f"127.0.0.1:{grpc}"]
    argv += ["--max-workers", str(args.workers)]
    sim = Child("simulator", [python, "-m", "curbside_sim.runner", *argv], log=logs / "sim.log")
    children.append(sim)
    say(
        f"started tritonserver (pid {triton.process.pid}) and the simulator "
        f"(pid {sim.process.pid}); logs in {logs}"
    )
    until(clock.exists, timeout=300, what="the simulator's cars", children=children)
    say(
        f"{args.cars} simulated cars enrolled (owners' policies drawn per car) and reporting; "
        f"clock x{args.speed:g}: a simulated day every {86_400 / args.speed / 60:.1f} min"
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(tb.kubeconfig_for("curbside-operator", groups=("system:masters",))),
        "CURBSIDE_LEDGER_PATH": str(work / "ledger.sqlite3"),
        "CURBSIDE_DISPATCHER_HOST": "127.0.0.1",
        "CURBSIDE_DISPATCHER_PORT": str(dispatcher),
        "CURBSIDE_DISPATCHER_URL": f"http://127.0.0.1:{dispatcher}",
        "CURBSIDE_METRICS_PORT": str(metrics),
        "CURBSIDE_EXPECTED_UNIT_SECONDS": "60",
        "CURBSIDE_STATUS_INTERVAL_SECONDS": "1",
    }
    operator = Child("operator", [python, "-m", "curbside_operator"], log=logs / "operator.log", env=env)
    children.append(operator)
    until(
        lambda: answers(f"http://127.0.0.1:{dispatcher}/healthz"),
        timeout=120,
        what="the operator's dispatcher",
        children=children,
    )
    say(
        f"operator up (pid {operator.process.pid}): dispatcher on 127.0.0.1:{dispatcher}, "
        f"metrics on 127.0.0.1:{metrics}"
    )
    until(
        lambda: all(answers(f"http://127.0.0.1:{http}/v2/models/{m}/ready") for m in MODELS),
        timeout=600,
        what="tritonserver with both models",
        children=children,
    )
    say(f"tritonserver serving {', '.join(MODELS)} on 127.0.0.1:{grpc} (gRPC)")
    return f"http://127.0.0.1:{metrics}/metrics", sim


def apply_jobs(tb: bed.TestBed, work: Path, *, unit_timeout_s: int) -> dict[str, Path]:
    """Each example job, rewritten to write under ``work``, piped to ``kubectl apply -f -``."""
    files = {}
    for example in EXAMPLES:
        name, doc = prepared_job(example, results=work / "results", unit_timeout_s=unit_timeout_s)
        text = yaml.safe_dump(doc, sort_keys=False)
        files[name] = work / "jobs" / f"{name}.yaml"
        files[name].parent.mkdir(parents=True, exist_ok=True)
        files[name].write_text(text)
        out = kubectl(tb, "apply", "-n", NAMESPACE, "-f", "-", stdin=text).strip()
        say(
            f"kubectl apply -f - < {example.relative_to(REPO)} (spec.output.uri -> "
            f"{doc['spec']['output']['uri']}, unitTimeoutSeconds {doc['spec']['unitTimeoutSeconds']}): {out}"
        )
    return files


def follow(
    tb: bed.TestBed, names: Sequence[str], children: list[Child], sim: Child, deadline: float
) -> dict[str, Any]:
    """Live progress until every job ended (or the deadline); the jobs as last read, and when each ended."""
    progress, started, ended = Progress(names), time.monotonic(), {}
    jobs: dict[str, Any] = {}
    with tb.http() as client:
        while True:
            for child in children:
                if not child.alive:
                    raise DemoError(
                        f"{child.name} exited ({child.process.returncode}); last lines of "
                        f"{child.log}:\n{child.tail()}"
                    )
            items = client.get(JOBS.format(namespace=NAMESPACE)).json().get("items", [])
            jobs = {j["metadata"]["name"]: j for j in items if j["metadata"]["name"] in names}
            for name, job in jobs.items():
                if finished(job) and name not in ended:
                    ended[name] = time.monotonic() - started
            progress.show(jobs, fleet_line(sim.last_line("[sim] 2")), time.monotonic() - started)
            if len(ended) == len(names) or time.monotonic() > deadline:
                progress.release()
                return {"jobs": jobs, "ended": ended, "wall": time.monotonic() - started}
            time.sleep(1.0)


def _label(labels: str) -> str:
    """``{reason="Driving"}`` -> ``Driving``."""
    return re.sub(r'[{}"]|reason=', "", labels)


def report(state: dict[str, Any], metrics_text: str, sim_line: str, work: Path) -> list[str]:
    lines = ["", "Summary"]
    total_units = 0
    for name, job in state["jobs"].items():
        status, ended = job.get("status") or {}, finished(job) or "not finished"
        units = status.get("units") or {}
        message = condition(job, "Succeeded").get("message", "")
        reruns = re.search(r"\((\d+) re-runs\)", message)
        wall = state["ended"].get(name, state["wall"])
        done = int(units.get("succeeded") or 0)
        total_units += done
        lines += [
            f"  {name:18} {ended}: {done}/{units.get('total', 0)} units, {units.get('failed', 0)} failed, "
            f"{reruns.group(1) if reruns else '?'} re-runs, {status.get('departuresHandled', 0)} departures "
            f"handled, {wall:.0f}s, {done / max(wall, 1e-9):.2f} units/s",
            f"  {'':18} results: {work / 'results' / NAMESPACE / name}/ "
            f"({len(list((work / 'results' / NAMESPACE / name).glob('*.json')))} files)",
        ]
    departures = metric(metrics_text, "curbside_departures_handled_total")
    by_reason = ", ".join(f"{_label(k)} {v:.0f}" for k, v in sorted(departures.items()))
    placed = sum(metric(metrics_text, "curbside_placements_total").values())
    lines += [
        f"  both jobs: {total_units} units in {state['wall']:.0f}s "
        f"({total_units / max(state['wall'], 1e-9):.2f} units/s); operator: {placed:.0f} pods placed, "
        f"pods withdrawn from cars by reason: {by_reason or 'none'}",
        f"  simulator: {sim_line.split('| workers ')[-1] if '| workers ' in sim_line else sim_line or '?'}",
        "  (re-runs: attempts that ended without a result; departures handled: times a car left holding "
        "units of the job; committed counts each replica)",
    ]
    return lines


def check(files: dict[str, Path]) -> bool:
    """The known-answer check of each job's results, each in its own process."""
    say("checking every result against the known answers (recomputed here: about a minute)")
    ok = True
    for path in files.values():
        done = subprocess.run(
            [sys.executable, "-m", "curbside_testbed.checks", "--job-file", str(path)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        print(f"  {(done.stdout.strip() or done.stderr.strip()[-2000:])}", flush=True)
        ok = ok and done.returncode == 0
    return ok


def run(args: argparse.Namespace, tb: bed.TestBed, work: Path, children: list[Child]) -> int:
    began = time.monotonic()
    deadline = began + args.time_limit
    say(f"bringing up test bed {tb.name!r} with {args.cars} cars")
    tb.up(cars=args.cars, timeout=max(60.0, deadline - time.monotonic()))
    say(f"test bed up in {time.monotonic() - began:.0f}s")
    print(summary(tb), flush=True)
    kubectl(tb, "apply", "--server-side", "-f", str(REPO / "crds"))
    kubectl(tb, "wait", "--for=condition=Established", "-f", str(REPO / "crds"), "--timeout=60s")
    metrics_url, sim = start_processes(args, tb, work, children)
    files = apply_jobs(tb, work, unit_timeout_s=args.unit_timeout)
    state = follow(tb, list(files), children, sim, deadline)
    print(kubectl(tb, "get", "inferencejobs", "-n", NAMESPACE, "-o", "wide").rstrip(), flush=True)
    metrics_text = httpx.get(metrics_url, timeout=10).text
    for child in reversed(children):  # simulator first: its workers stop before the dispatcher goes
        child.stop()
    lines = report(state, metrics_text, sim.last_line("[sim] workers "), work)
    print("\n".join(lines), flush=True)
    outcomes = {name: finished(job) for name, job in state["jobs"].items()}
    if len(state["ended"]) < len(files):
        say(f"time limit of {args.time_limit:.0f}s reached before every job ended: {outcomes}")
    checked = check(files)
    good = (
        checked
        and all(outcome == "Succeeded" for outcome in outcomes.values())
        and len(outcomes) == len(files)
    )
    say(
        f"{'PASS' if good else 'FAIL'}: jobs {json.dumps(outcomes)}, "
        f"results {'correct' if checked else 'WRONG'}; {time.monotonic() - began:.0f}s in all"
    )
    return 0 if good else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m curbside_testbed.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--cars", type=int, default=200)
    parser.add_argument("--name", default="demo", help="test bed name")
    parser.add_argument("--speed", type=float, default=300.0, help="simulated seconds per wall second")
    parser.add_argument("--seed", type=int, default=1, help="the fleet's mobility seed")
    parser.add_argument("--workers", type=int, default=8, help="workers computing at once (one Triton)")
    parser.add_argument("--unit-timeout", type=int, default=60, help="jobs' unitTimeoutSeconds, if unset")
    parser.add_argument(
        "--time-limit", type=float, default=1200.0, help="seconds from bring-up to both jobs done"
    )
    parser.add_argument(
        "--workdir", type=Path, default=REPO / ".demo", help="ledger, logs, results (emptied)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the test bed up at the end")
    args = parser.parse_args(argv)
    build.ensure_built()
    tb = bed.TestBed(args.name)
    if tb.layout is not None:
        say(f"taking down the test bed {tb.name!r} left by an earlier run")
        tb.down()
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    children: list[Child] = []
    code = 1
    try:
        code = run(args, tb, work, children)
    except DemoError as error:
        say(f"FAILED: {error}")
    except KeyboardInterrupt:
        say("interrupted")
        code = 130
    finally:
        for child in reversed(children):
            child.stop()
        if args.keep:
            say(
                f'test bed kept: eval "$(.venv/bin/curbside testbed env --name {tb.name})"; '
                f"kubectl get ij,vn; then .venv/bin/curbside testbed down --name {tb.name}"
            )
        else:
            tb.down()
            say(f"test bed {tb.name!r} is down; results, ledger and logs stay in {work}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
