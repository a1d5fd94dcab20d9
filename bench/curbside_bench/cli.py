"""``curbside bench [--quick] [--cars N] --out DIR``: every scenario, one test bed, one run.

Why this exists: the figures are only comparable when Curbside and its baseline run at the
same time on the same bed, with the machine, versions, seed and load written next to them.
This brings the bed up once, runs the scenarios in an order that keeps them out of each
other's way (kube-scheduler's timing first, while nothing else schedules; the baseline's
departures in the background, because Kubernetes needs minutes; Curbside's scenarios
meanwhile, the footprint with as many pods as cars; the inference path last, once the bed is
down), then writes ``results.json``,
``results.md`` and the PNG figures into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from curbside_bench import (
    baseline,
    churn,
    curbside,
    departure,
    footprint,
    inference,
    kit,
    placement,
    plots,
    results,
)
from curbside_testbed import bed, build

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Plan:
    """How big each scenario is: ``--quick`` (under 10 minutes on 2 cores) or the full run."""

    announced: int
    silent: int
    renew_s: float
    singles: int
    churn_cars: int
    churn_minutes: float
    churn_speed: float
    idle_s: float
    baseline_wait_s: float

    @staticmethod
    def for_run(quick: bool, cars: int) -> Plan:
        # The scripted agents' Lease writes stay near 60/s (6 in 10 cars are Curbside's): at
        # cars / 200 (120/s), 3,000 cars went stale while the operator placed their pods, on
        # the same two cores (docs/bench/README.md).
        renew = max(10.0, cars / 100)
        if quick:
            return Plan(20, 5, renew, 3, min(100, cars // 5), 1.0, 60.0, 30.0, 480.0)
        # Churn: 150 cars at ×20 (15-s units, 10 units/s). At 10,000 cars on two cores the
        # operator gets about 0.3 of a core and its watches of 10,000 cars take 0.26 of it, which
        # leaves its dispatcher about 20 requests/s: 500 cars ask 33 units/s, and in a full
        # `curbside bench` run the 5-minute job took 16 minutes and counted the queue as idle
        # car-time (0.69).
        # The baseline is collected 40 minutes after its departures began, so the run stays under
        # an hour: Kubernetes rate-limits the tainting of departed nodes per zone, and with the default
        # tolerations its mass departure takes about 47 minutes at 10,000 cars; pods not re-placed by then
        # are reported as "> waited (moved/displaced)".
        return Plan(50, 10, renew, 5, min(150, cars // 5), 5.0, 20.0, 120.0, 2400.0)


def _label(api: Any, cars: dict[str, str]) -> None:
    def one(item: tuple[str, str]) -> None:
        r = api.patch(
            f"/api/v1/nodes/{item[0]}",
            json={"metadata": {"labels": {kit.GROUP_LABEL: item[1]}}},
            headers=kit.MERGE,
        )
        r.raise_for_status()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, cars.items()))


METADATA_ONLY = {"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"}


def _count(api: Any, path: str, selector: str = "") -> int:
    """How many objects ``path`` lists: names only (a metadata list), 500 a page, so counting
    10,000 VehicleNodes costs the API server a fraction of listing them; 0 while a CRD is
    still being established (a 404)."""
    try:
        return sum(
            len(page) for page in kit.pages(api, path, selector=selector, limit=500, headers=METADATA_ONLY)
        )
    except httpx.HTTPStatusError:
        return 0


def _eligible_nodes(api: Any) -> int:
    """Cars whose Node the operator labelled eligible (it labels as it writes the status)."""
    return _count(api, "/api/v1/nodes", "curbside.dev/eligible=true")


def _vehiclenodes(api: Any) -> list[dict[str, Any]]:
    """Every VehicleNode; none while the CRD is still being established (a 404 page)."""
    r = api.get(kit.VN)
    return list(r.json().get("items", [])) if r.status_code == 200 else []


def _eligible(api: Any) -> int:
    items = _vehiclenodes(api)
    return sum(bool((v.get("status", {}).get("operator") or {}).get("eligible")) for v in items)


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan.for_run(args.quick, args.cars)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    env = results.environment(repo=REPO, kubernetes=build.kubernetes_version())
    tb = bed.TestBed(args.bed)
    work = Path(tempfile.mkdtemp(prefix="curbside-bench-"))
    roles = {kit.car_name(i): kit.role(i) for i in range(args.cars)}
    ours = [name for name, r in roles.items() if r.curbside]
    groups = {
        label: [n for n, r in roles.items() if r.label == label]
        for label in ("single-default", "single-shortest", "mass-default", "mass-shortest")
    }
    scenarios: list[results.Scenario] = []
    operator = cars = sampler = None
    try:
        say(
            f"bringing up test bed {args.bed!r} with {args.cars:,} cars "
            f"(load average {results.load_average()[0]})"
        )
        tb.up(cars=args.cars, timeout=3600)
        api = tb.http(timeout=300)
        _label(api, {n: r.label for n, r in roles.items()})
        say(
            f"baseline: {sum(len(g) for g in groups.values()):,} cars in 4 Deployments; "
            "departures start in the background"
        )
        base = baseline.Baseline(api, groups, seed=args.seed)
        base.deploy(900)
        base.start(singles=plan.singles, stagger=11.0, mass_share=0.2, mass_window=60.0)
        base_deadline = time.monotonic() + plan.baseline_wait_s
        for ns in ("curbside-cars", curbside.NAMESPACE):
            api.post("/api/v1/namespaces", json={"metadata": {"name": ns}})
        # Curbside's cars heartbeat from now on, so both placers are timed under the same API
        # load (the Lease writes of every car are most of what a 2-core API server does).
        cars = kit.Cars(tb.server, tb.ssl_context(), ours, period=plan.renew_s)
        cars.start()
        # Kubernetes notices the first baseline departure only after its grace period (50 s):
        # kube-scheduler's timing fits before, so the baseline's replacements never wait for it.
        # Both placers place the job the departure scenarios then use: on half of Curbside's cars,
        # so a departed car's units always find a free car for their replacement pod.
        half = len(ours) // 2
        say(f"kube-scheduler placing {half:,} pods")
        sched = placement.kube_scheduler(tb, api, half, 900)
        removal = placement.Removal(tb, api, half)
        subprocess.run(
            [str(build.toolchain().binary("kubectl")), "apply", "-f", str(REPO / "crds")],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "KUBECONFIG": str(tb.kubeconfig)},
        )
        grace = plan.renew_s * 3
        operator = kit.Operator(
            kubeconfig=tb.kubeconfig_for(curbside.OPERATOR_USER, groups=("system:masters",)),
            work=work,
            grace=grace,
            extra_env={
                "CURBSIDE_EXPECTED_UNIT_SECONDS": "30",
                "CURBSIDE_STATUS_INTERVAL_SECONDS": "1",
                "CURBSIDE_SLOTS_PER_CAR": str(footprint.SLOTS_PER_CAR),
            },
        )
        operator.start()
        sampler = footprint.Sampler(operator)
        sampler.start()
        # The bench's own lists (every VehicleNode, a job's pods) stay a small share of the API
        # server's work: one a second at 1,000 cars, one every 10 s at 10,000.
        poll = max(1.0, args.cars / 1000)
        # How long a count may stand still before the bench goes on with what it has: the
        # operator judges 10,000 freshly enrolled cars in minutes on two shared cores.
        patience = max(45.0, args.cars / 50)
        ctx = kit.Ctx(api, tb.audit_log, cars, ours, operator, work, args.seed, args.quick, poll)
        kit.until(
            "every car enrolled", lambda: _count(api, kit.VN) >= args.cars, max(900, args.cars / 5), poll
        )
        kit.report_all(api, ours, kit.CHARGING)
        kit.until_done_or_stalled(
            "Curbside's cars eligible",
            lambda: _eligible_nodes(api),
            round(0.95 * len(ours)),
            stall=patience,
            timeout=900,
            interval=poll,
        )
        eligible = _eligible(api)
        if eligible < len(ours) // 2:
            raise kit.BenchError(
                f"only {eligible:,} of Curbside's {len(ours):,} cars became eligible "
                f"(operator log: {operator.log})"
            )
        removal.wait(900)
        sampler.mark("placement")
        say(f"Curbside placing a job on {half:,} of {eligible:,} eligible cars")
        place = placement.run(ctx, "depart", half, 900, sched)
        scenarios.append(place)
        sampler.mark("departures")
        say(f"{plan.announced} announced departures, {plan.silent} silent ones")
        one = {
            "announced": departure.announced(ctx, "depart", plan.announced),
            "silent": departure.silent(ctx, "depart", plan.silent, grace),
        }
        kit.until_done_or_stalled(
            "the departure job's pods",
            lambda: len(curbside.pods(api, "depart")),
            half,
            stall=30,
            timeout=300,
            interval=poll,
        )
        sampler.mark("fill")
        say(f"two more jobs, so the bench holds {args.cars:,} pods")
        filled = footprint.fill(ctx, pods=args.cars, timeout=900)
        sampler.mark("idle")
        say(f"holding the fleet still for {plan.idle_s:.0f} s")
        idle = {**footprint.idle(ctx, tb, seconds=plan.idle_s, cars_total=args.cars), "fill": filled}
        sampler.mark("unfill")
        idle["unfill_s"] = footprint.unfill(ctx, 900)
        sampler.mark("mass")
        say("mass departure: 20 % of Curbside's cars within 60 s")
        two = departure.mass(ctx, "depart", share=0.2, window=60.0)
        curbside.delete(api, "depart", 600, poll)
        sampler.mark("churn")
        say(f"churn: {plan.churn_cars} cars, {plan.churn_minutes} min at ×{plan.churn_speed:g}")
        scenarios.append(
            churn.run(ctx, cars=plan.churn_cars, minutes=plan.churn_minutes, speed=plan.churn_speed)
        )
        sampler.stop()
        scenarios.append(footprint.scenario({f"{args.cars} cars": idle}, sampler))
        say("waiting for the baseline's pods to come back")
        base_figures = base.collect(base_deadline)
        scenarios[:0] = departure.scenarios(one, two, base_figures, args.cars)
    finally:
        for part in (sampler, cars, operator):
            if part is not None:
                part.stop()
        if not args.keep:
            tb.down()
    if not args.skip_inference:  # last, with the test bed down: nothing else competes for the CPU
        say(f"inference path: Triton vs in-process (load average {results.load_average()[0]})")
        scenarios.append(inference.run(REPO, work, quick=args.quick, timeout=1200))
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    doc = results.document(
        env=env,
        mode="quick" if args.quick else "full",
        cars=args.cars,
        seed=args.seed,
        started=started,
        finished=finished,
        scenarios=scenarios,
    )
    doc["machine"]["operator_log"] = str(operator.log) if operator else ""
    return doc


def write(doc: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "results.md").write_text(results.markdown(doc))
    return [out / "results.json", out / "results.md", *plots.draw(doc, out)]


def markers(mode: str) -> tuple[str, str]:
    """The README's markers for a run: the quick and the full run each have their own place."""
    tag = "bench" if mode == "quick" else f"bench:{mode}"
    return f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"


def update_readme(readme: Path, doc: dict[str, Any], out: Path) -> None:
    """Put the table and the figures between the README's markers for the run's mode
    (``<!-- bench:begin -->`` for ``--quick``, ``<!-- bench:full:begin -->`` otherwise);
    nothing else changes."""
    text = readme.read_text()
    begin, end = markers(str(doc["mode"]))
    if begin not in text or end not in text:
        raise kit.BenchError(f"--readme {readme}: no {begin} ... {end} markers to write between")
    rel = out.resolve().relative_to(readme.resolve().parent)
    figures = " ".join(f"![{p.stem}]({rel / p.name})" for p in sorted(out.glob("*.png")))
    raw = f"Raw figures: [{rel}/results.json]({rel}/results.json)."
    body = f"{begin}\n{results.markdown(doc)}\n{figures}\n\n{raw}\n{end}"
    head, rest = text.split(begin, 1)
    readme.write_text(head + body + rest.split(end, 1)[1])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="curbside bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1,000 cars, short scenarios (under 10 minutes)")
    p.add_argument(
        "--cars", type=int, default=None, help="fleet size (default 1,000 with --quick, else 10,000)"
    )
    p.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md and the PNGs")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bed", default="bench", help="test bed name (default: bench)")
    p.add_argument("--keep", action="store_true", help="leave the test bed up afterwards")
    p.add_argument("--skip-inference", action="store_true", help="leave out scenario 6 (no torch/Triton)")
    p.add_argument(
        "--replot", action="store_true", help="only redraw table and figures from --out/results.json"
    )
    p.add_argument("--readme", type=Path, default=None, help="also write the table into this README")
    args = p.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the operator stops and the test bed comes down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.replot:
        doc = json.loads((args.out / "results.json").read_text())
        results.validate(doc)
    else:
        args.cars = args.cars or (1000 if args.quick else 10_000)
        if args.cars < 100:
            p.error("--cars: at least 100 (every scenario needs its own cars)")
        doc = run(args)
    for path in write(doc, args.out):
        print(path)
    if args.readme:
        update_readme(args.readme, doc, args.out)
    print(results.markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
