"""``curbside-agent``: one car's agent as a process (the agent image's command; ``curbside agent`` too).

Why this module exists: on a car the agent is a long-running process with a handful of flags:
which car it is, where the car's signals come from, which credentials reach the API server,
how often to renew its Lease, where to serve its metrics. Everything it does is in
``agent.Agent``; this wires the real pieces together:

1. Read the car's VehicleNode (a read, with the car's own credentials): the owner's policy
   from ``spec.policy``, and the last status the agent reported, so a restarted agent does not
   rewrite an unchanged status (nor start today's energy budget afresh: ``Agent.resume``).
2. Serve Prometheus metrics (``metrics.REGISTRY``) on ``--metrics-host`` (loopback unless
   told otherwise: the car's exporter is for a local scraper or a port-forward, never the
   car's networks; the chart binds the pod IP so Prometheus reaches it over the pod network).
3. Poll the signals every ``--poll-seconds`` and step (``Agent.run``); re-read the policy every
   ``--policy-seconds`` so an owner's change takes effect without a restart.
4. Stop cleanly on SIGTERM/SIGINT.

Exit codes: 0 stopped by a signal; 1 the car cannot start (credentials, no VehicleNode, a bad
policy); 2 bad flags.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from curbside_agent import agent, credentials, interlock, kube, metrics, policy, status
from curbside_agent.signals import sources
from curbside_api import base
from curbside_api.v1alpha1 import vehiclenode

log = logging.getLogger("curbside_agent")


def source(spec: str) -> sources.VehicleSignals:
    """``file:PATH`` or an ``http(s)://`` URL to a signal source; ValueError otherwise."""
    if spec.startswith("file:"):
        return sources.FileSource(Path(spec.removeprefix("file:")))
    if spec.startswith(("http://", "https://")):
        return sources.HttpSource(spec)
    raise ValueError(f"--source {spec!r}: use file:PATH or an http(s):// URL")


def parser(prog: str = "curbside-agent") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run one car's agent.")
    p.add_argument("--vehicle", required=True, help="the car's name (its Node, VehicleNode and Lease)")
    p.add_argument("--source", required=True, help="vehicle signals: file:PATH or http(s)://URL")
    p.add_argument("--kubeconfig", type=Path, help="credentials (default: $KUBECONFIG, else in-cluster)")
    p.add_argument("--lease-seconds", type=int, default=10, help="Lease renewal period, seconds (default 10)")
    p.add_argument("--lease-namespace", default=kube.LEASE_NAMESPACE, help="namespace of car Leases")
    p.add_argument("--metrics-port", type=int, default=9464, help="Prometheus metrics port (0: none)")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address the metrics port listens on")
    p.add_argument("--poll-seconds", type=float, default=0.1, help="how often to read the signals")
    p.add_argument("--policy-seconds", type=float, default=60.0, help="how often to re-read the policy")
    p.add_argument("--grace-seconds", type=float, default=2.0, help="SIGTERM to SIGKILL for local work")
    p.add_argument("--region", help="the car's region, reported in status (optional)")
    p.add_argument("--verbose", action="store_true")
    return p


def reported_status(body: dict[str, Any]) -> dict[str, Any] | None:
    """The agent-owned part of a stored status (what this car reported last), or None."""
    stored = body.get("status") or {}
    mine = {key: value for key, value in stored.items() if key in status.AGENT_FIELDS}
    return mine or None


def rules_of(body: dict[str, Any]) -> policy.OwnerPolicy:
    """The owner's rules from a stored VehicleNode (``base.InvalidSpecError``/ValueError if unusable)."""
    return policy.from_spec(vehiclenode.VehicleNode.from_body(body).spec.policy)


async def _follow_policy(
    car: agent.Agent, reporter: kube.CarReporter, *, every: float, stop: asyncio.Event
) -> None:
    """Re-read the VehicleNode every ``every`` seconds; apply a changed policy."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
            return
        try:
            rules = rules_of(await reporter.vehiclenode())
        except (agent.ReportError, base.InvalidSpecError, ValueError) as exc:
            log.warning("cannot re-read the owner's policy, keeping the current one: %s", exc)
            continue
        if rules != car.policy:
            log.info("owner's policy changed")
            car.set_policy(rules)


async def run(args: argparse.Namespace, *, stop: asyncio.Event) -> int:
    """The agent until ``stop`` is set; the exit code."""
    try:
        creds = credentials.Credentials.load(args.kubeconfig)
        signals = source(args.source)
    except (credentials.CredentialsError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    api = kube.Api(kube.connect(creds, max_connections=2))
    reporter = kube.CarReporter(
        api,
        car=args.vehicle,
        lease_seconds=args.lease_seconds,
        clock=lambda: datetime.now(UTC),
        namespace=args.lease_namespace,
    )
    try:
        body = await reporter.vehiclenode()
        rules = rules_of(body)
    except (agent.ReportError, base.InvalidSpecError, ValueError) as exc:
        log.error("cannot start: VehicleNode %s: %s", args.vehicle, exc)
        await api.aclose()
        return 1
    car = agent.Agent(
        signals=signals,
        reporter=reporter,
        owner_policy=rules,
        guard=interlock.Interlock(clock=time.monotonic, grace_seconds=args.grace_seconds),
        now=lambda: datetime.now(UTC),
        monotonic=time.monotonic,
        region=args.region,
        lease_renew_seconds=float(args.lease_seconds),
    )
    car.resume(reported_status(body))
    follower = asyncio.create_task(_follow_policy(car, reporter, every=args.policy_seconds, stop=stop))
    try:
        await car.run(stop=stop, poll_seconds=args.poll_seconds)
    finally:
        stop.set()
        await follower
        await car.interlock.settle()
        await api.aclose()
    return 0


def parse(
    p: argparse.ArgumentParser, argv: Sequence[str] | None, *, quiet: bool = False
) -> argparse.Namespace | int:
    """Flags (and logging set up from ``--verbose``), or the exit code argparse chose (2: bad flags)."""
    try:
        args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    level = logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    return args


def until_signalled(work: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    """Run ``work(stop)`` in a new event loop; SIGTERM and SIGINT set ``stop``. Its exit code."""

    async def main_loop() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await work(stop)

    return asyncio.run(main_loop())


def main(argv: Sequence[str] | None = None, *, prog: str = "curbside-agent") -> int:
    """``curbside-agent ...``: run until SIGTERM/SIGINT; the exit code (see the module docstring)."""
    args = parse(parser(prog), argv)
    if isinstance(args, int):
        return args
    stop_metrics = metrics.serve(args.metrics_port, args.metrics_host) if args.metrics_port else None
    try:
        return until_signalled(lambda stop: run(args, stop=stop))
    finally:
        if stop_metrics is not None:
            stop_metrics()
