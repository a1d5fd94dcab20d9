"""``curbside sim``: one process runs a whole simulated fleet of car agents against a real API server.

Why this module exists: Curbside's promises (a departure visible within a second, zero writes
for a car that sits still, 10,000 cars on a laptop) are only believable when measured with
the real agent code against a real control plane. This process enrolls ``--cars`` cars
(``enroll``: a VehicleNode each, from the car's profile, if missing), builds one ``Agent``
per car with the same code a real car runs (policy, interlock, status, Lease renewal through
``kube.CarReporter``), and drives them from the mobility model on an accelerated clock
(``driver``). Deterministic for a seed: the same cars, policies and traces; which readings
share a tick depends on the wall clock, so the exact patches can differ between runs.

Credentials: ``--kubeconfig`` (admin) enrolls; the agents write with ``--agent-kubeconfig``
(default: the same). With ``--as-cars`` every agent request impersonates its car
(``curbside:car:<car>``, group ``curbside:cars``), so RBAC and the admission policy judge the
simulated cars exactly as real ones.

Every ``--report-seconds`` it prints one line: simulated time, speed, cars by state, eligible
cars, events/steps/patches/renewals per wall second, the work queued and the longest a step
or renewal waited in the queue, CPU and memory. ``--clock-file`` gets the clock's anchor
(JSON: start, speed, wall0) once cars run, so a test can map a report's ``observedAt`` back to
wall time.

Real work (``--triton-url``, or ``--serve-models`` to start a PyTriton server here): the
simulator also plays its cars' kubelets for Curbside's inference pods (``workers``), running
the real worker for each pod bound to one of its cars and killing it mid-unit when the car
drives away, falls asleep or vanishes; the summary line then counts workers and commits. The
workers' pod-bound dispatcher tokens are requested with ``--kubeconfig``'s credentials
(``tokens``: ``create`` on ``serviceaccounts/token``).

``--metrics-port`` serves the agents' and the workers' metrics on one page (fleet totals: no
metric is labelled by car), so a Prometheus can scrape a simulated fleet as it would a real one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import resource
import socket
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from curbside_agent import agent, cli, credentials, interlock, kube, metrics, policy, state
from curbside_agent.signals import sources
from curbside_api.v1alpha1 import vehiclenode
from curbside_sim import driver, enroll, mobility, pace, tokens, workers
from curbside_testbed import serve
from curbside_worker import metrics as worker_metrics
from curbside_worker.triton import TritonUnavailable

log = logging.getLogger("curbside_sim")
DEFAULT_START = "2025-03-03T06:00:00+00:00"  # a Monday morning: commuters about to leave
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
POOL = 8
"""Connections per HTTP pool; ``--concurrency`` requests in flight are spread over several pools."""


def duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``3d``, ``45s`` or plain seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number with s, m, h or d (e.g. 3d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def moment(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a UTC offset (e.g. 2025-03-03T06:00:00Z)")
    return parsed


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="curbside sim", description="Run a simulated fleet of car agents.")
    p.add_argument("--cars", type=int, default=1000, help="how many cars (car-00000 ...)")
    p.add_argument("--speed", type=float, default=60.0, help="simulated seconds per wall second (0: max)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kubeconfig", type=Path, help="admin credentials for enrollment (default $KUBECONFIG)")
    p.add_argument("--agent-kubeconfig", type=Path, help="credentials the agents write with (default: same)")
    p.add_argument("--as-cars", action="store_true", help="agents impersonate their cars")
    p.add_argument("--start", type=moment, default=moment(DEFAULT_START), help="simulated start (ISO 8601)")
    p.add_argument(
        "--duration", type=duration, help="simulated time to run (e.g. 3d); default: until stopped"
    )
    p.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="instead of --speed: a speed per 2 simulated minutes that keeps about this many "
        "changes per wall second (fast through quiet nights; needs --duration)",
    )
    p.add_argument("--fastest", type=float, default=3600.0, help="with --pace: the highest speed")
    p.add_argument("--lease-seconds", type=int, default=10, help="Lease renewal period, wall seconds")
    p.add_argument(
        "--battery-step",
        type=float,
        default=1.0,
        help="battery resolution of the simulated gateways, percent",
    )
    p.add_argument("--lease-namespace", default=kube.LEASE_NAMESPACE)
    p.add_argument("--concurrency", type=int, default=64, help="API requests in flight at most")
    p.add_argument("--tick-seconds", type=float, default=0.05, help="wall seconds between ticks")
    p.add_argument(
        "--max-step", type=duration, default=timedelta(seconds=10), help="simulated step at speed 0"
    )
    p.add_argument("--report-seconds", type=float, default=5.0, help="wall seconds between summary lines")
    p.add_argument("--clock-file", type=Path, help="write the clock's anchor here (JSON) once cars run")
    work = p.add_mutually_exclusive_group()
    work.add_argument(
        "--triton-url", help="HOST:PORT of a Triton (gRPC): run the real worker for pods on simulated cars"
    )
    work.add_argument(
        "--serve-models",
        help="start a PyTriton server here with these models (comma-separated) and use it as --triton-url",
    )
    p.add_argument("--max-workers", type=int, default=8, help="workers running at once, at most")
    p.add_argument(
        "--metrics-port", type=int, default=0, help="serve the agents' and workers' metrics here (0: none)"
    )
    p.add_argument("--metrics-host", default="127.0.0.1", help="address the metrics port listens on")
    p.add_argument("--verbose", action="store_true")
    return p


def usage() -> dict[str, float]:
    """CPU seconds (user + system) and resident memory (MiB now, MiB peak) of this process."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rss = 0.0
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "rss_mib": rss, "max_rss_mib": ru.ru_maxrss / 1024}


class Summary:
    """The periodic one-line report: rates over the interval since the previous line."""

    def __init__(
        self, run: driver.Driver, *, out: TextIO, every: float, extra: Callable[[], str] | None = None
    ) -> None:
        self.run, self.out, self.every, self.extra = run, out, every, extra
        self.last_at = time.monotonic()
        self.last = driver.Totals()
        self.last_cpu = usage()["cpu_s"]

    def maybe(self) -> None:
        if time.monotonic() - self.last_at >= self.every:
            self.line()

    def line(self) -> str:
        now, totals, used = time.monotonic(), self.run.totals, usage()
        span = max(1e-9, now - self.last_at)
        states = self.run.states()
        text = (
            f"[sim] {self.run.clock.now():%Y-%m-%dT%H:%M}Z x{self.run.clock.current_speed():.0f} | "
            + " ".join(f"{key} {states[key]}" for key in sorted(states))
            + f" | eligible {self.run.eligible()}"
            + f" | events {(totals.events - self.last.events) / span:.0f}/s"
            + f" steps {(totals.steps - self.last.steps) / span:.0f}/s"
            + f" patches {(totals.patches - self.last.patches) / span:.0f}/s"
            + f" renewals {(totals.renewals - self.last.renewals) / span:.0f}/s"
            + f" | queued {self.run.backlog} wait<={totals.lag_max:.2f}s"
            + f" cpu {(used['cpu_s'] - self.last_cpu) / span:.0%}"
            + f" rss {used['rss_mib']:.0f}MiB"
            + ("" if self.extra is None else f" | {self.extra()}")
        )
        print(text, file=self.out, flush=True)
        self.last_at, self.last, self.last_cpu = now, driver.Totals(**vars(totals)), used["cpu_s"]
        totals.lag_max = 0.0
        return text


def build_cars(
    *,
    stored: dict[str, dict[str, Any]],
    nodes: dict[str, enroll.NodeFacts],
    apis: list[kube.Api],
    clock: driver.SimClock,
    lease_seconds: int,
    namespace: str,
    impersonate: bool,
) -> list[driver.Car]:
    """One agent per enrolled car, as a real car would run it; car ``i`` writes through ``apis[i % n]``."""
    cars: list[driver.Car] = []
    for index, name in enumerate(stored):
        body = stored[name]
        source = sources.MemorySource()
        reporter = kube.CarReporter(
            apis[index % len(apis)],
            car=name,
            lease_seconds=lease_seconds,
            clock=lambda: datetime.now(UTC),
            namespace=namespace,
            impersonate=impersonate,
        )
        car = agent.Agent(
            signals=source,
            reporter=reporter,
            owner_policy=policy.from_spec(vehiclenode.VehicleNode.from_body(body).spec.policy),
            guard=interlock.Interlock(clock=time.monotonic),
            now=clock.now,
            monotonic=time.monotonic,
            region=nodes[name].region,
            lease_renew_seconds=float(lease_seconds),
        )
        car.reported = cli.reported_status(body)
        cars.append(driver.Car(index=index, agent=car, source=source))
    return cars


def blocker(car: driver.Car) -> str | None:
    """Why ``car`` cannot run work now (``vanished``, ``Driving``, ``Asleep``), or None: its worker
    is killed then. Read from what the car's agent is fed, so it holds before the car reports it."""
    if car.silent:
        return "vanished"
    if car.source.current is None:
        return "no reading"
    now = state.car_state(car.source.current)
    return now.value if now in (state.CarState.DRIVING, state.CarState.ASLEEP) else None


def serve_models(models: str) -> serve.ServerProcess:
    """A PyTriton server with ``models`` on free loopback ports, ready (this takes a while)."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(int(probe.getsockname()[1]))
    names = [name for name in models.split(",") if name]
    server = serve.ServerProcess.pytriton(
        names, grpc_port=ports[0], http_port=ports[1], extra_args=["--exit-timeout=1"]
    )
    return server.start(timeout=600)


async def start_workers(
    args: argparse.Namespace, cars: dict[str, driver.Car], *, creds: credentials.Credentials, out: TextIO
) -> tuple[workers.WorkerPool, asyncio.Task[None], kube.Api] | None:
    """The pool of real workers for pods on ``cars`` and the task feeding it pods (None: no Triton)."""
    if not args.triton_url:
        return None
    pool = workers.WorkerPool(
        cars=cars.keys(),
        blocked=lambda name: blocker(cars[name]),
        triton_url=args.triton_url,
        max_workers=args.max_workers,
        say=lambda line: print(line, file=out, flush=True),
        pod_tokens=tokens.PodTokens.from_credentials(creds),  # the dispatcher token, as a kubelet would
    )
    api = kube.Api(kube.connect(creds, max_connections=2))
    return pool, asyncio.create_task(workers.follow_pods(api, pool)), api


async def simulate(args: argparse.Namespace, *, stop: asyncio.Event, out: TextIO) -> driver.Driver:
    """Enroll, warm up and run the fleet until ``stop`` or ``--duration``; the driver (for its totals)."""
    admin_creds = credentials.Credentials.load(args.kubeconfig)
    agent_creds = (
        credentials.Credentials.load(args.agent_kubeconfig) if args.agent_kubeconfig else admin_creds
    )
    admin = kube.Api(kube.connect(admin_creds, max_connections=POOL))
    pools = max(1, -(-args.concurrency // POOL))  # several small pools: see kube.connect
    writers = [kube.Api(kube.connect(agent_creds, max_connections=POOL)) for _ in range(pools)]
    server: asyncio.Task[serve.ServerProcess] | None = None
    if args.serve_models:
        server = asyncio.create_task(asyncio.to_thread(serve_models, args.serve_models))
    running = None
    try:
        started = time.monotonic()
        stored, nodes = await enroll.enroll(
            admin, cars=args.cars, seed=args.seed, start=args.start, namespace=args.lease_namespace
        )

        def make_fleet() -> mobility.Fleet:
            return mobility.Fleet(
                cars=args.cars, seed=args.seed, start=args.start, battery_step_percent=args.battery_step
            )

        clock = driver.SimClock(start=args.start, speed=args.speed)
        if args.pace > 0:
            until = args.start + args.duration
            clock.paced = pace.schedule(make_fleet, until=until, rate=args.pace, fastest=args.fastest)
            clock.speed = clock.paced.fastest
            wall = clock.paced.wall_at(args.duration.total_seconds())
            print(f"[sim] paced at {args.pace:g} changes/s: {wall:.0f} s of wall time", file=out, flush=True)
        fleet = make_fleet()
        cars = build_cars(
            stored=stored,
            nodes=nodes,
            apis=writers,
            clock=clock,
            lease_seconds=args.lease_seconds,
            namespace=args.lease_namespace,
            impersonate=args.as_cars,
        )
        run = driver.Driver(fleet=fleet, cars=cars, clock=clock, concurrency=args.concurrency)
        print(f"[sim] enrolled {len(cars)} cars in {time.monotonic() - started:.1f}s", file=out, flush=True)
        await run.warm_up(lease_seconds=args.lease_seconds, rate=max(0.0, args.pace))
        print(
            f"[sim] warmed up: {run.totals.patches} first reports in {time.monotonic() - started:.1f}s",
            file=out,
        )
        if server is not None:
            args.triton_url = (await server).grpc_url
            print(f"[sim] serving {args.serve_models} at {args.triton_url}", file=out, flush=True)
        running = await start_workers(args, dict(zip(stored, cars, strict=True)), creds=admin_creds, out=out)
        pool = None if running is None else running[0]
        if args.clock_file is not None:
            args.clock_file.write_text(json.dumps(clock.anchor()))
        summary = Summary(
            run, out=out, every=args.report_seconds, extra=None if pool is None else pool.summary
        )

        def on_tick() -> None:
            if pool is not None:
                pool.check()  # before this tick's steps run: a car that drives off is stopped first
            summary.maybe()

        until = None if args.duration is None else args.start + args.duration
        await run.run(
            stop=stop,
            until=until,
            tick_seconds=args.tick_seconds,
            max_step_seconds=args.max_step.total_seconds(),
            on_tick=on_tick,
        )
        await run.close()
        summary.line()
        return run
    finally:
        if running is not None:
            workers_pool, follower, pods_api = running
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            workers_pool.close()
            print(f"[sim] {workers_pool.summary()}", file=out, flush=True)
            await pods_api.aclose()
        for api in (admin, *writers):
            await api.aclose()
        if server is not None:
            with contextlib.suppress(Exception):  # a server that failed to start failed the run already
                (await server).stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``curbside sim ...``: 0 when done or stopped by a signal, 1 on a fatal error, 2 on bad flags."""
    args = cli.parse(parser(), argv, quiet=True)
    if isinstance(args, int):
        return args
    if args.pace < 0 or (args.pace > 0 and (args.duration is None or args.fastest <= 0)):
        print(
            "curbside sim: --pace: a positive rate, with --duration and a positive --fastest", file=sys.stderr
        )
        return 2

    async def work(stop: asyncio.Event) -> int:
        try:
            await simulate(args, stop=stop, out=sys.stdout)
        except (credentials.CredentialsError, agent.ReportError, TimeoutError, TritonUnavailable) as exc:
            print(f"[sim] error: {exc}", file=sys.stderr)
            return 1
        return 0

    served = (worker_metrics.REGISTRY, metrics.REGISTRY)
    stop_metrics = metrics.serve(args.metrics_port, args.metrics_host, *served) if args.metrics_port else None
    try:
        return cli.until_signalled(work)
    finally:
        if stop_metrics is not None:
            stop_metrics()


if __name__ == "__main__":
    sys.exit(main())
