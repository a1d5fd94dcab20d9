"""The ``curbside`` command: one entry point for the developer's every process and tool.

Why this exists: the README, tests and the Makefile start everything the same way
(``curbside testbed up``, ``curbside operator``, ``curbside agent``, ``curbside sim``,
``curbside bench``). This package ships in no image: each image runs its own package's command
(``curbside-operator``, ``curbside-agent``, ``curbside-worker``), and the subcommands here hand
their arguments to exactly those. Subcommands import their modules lazily, so ``curbside
testbed env`` answers instantly and never loads kopf or torch.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def _testbed(args: argparse.Namespace) -> int:
    from curbside_testbed import bed, build, fleet

    if args.action == "build":
        tc = build.build(force=args.force)
        print(tc.bin_dir)
        return 0
    if args.action == "list":
        for name in bed.list_beds():
            print(name)
        return 0
    tb = bed.TestBed(args.name)
    if args.action == "up":
        started = time.monotonic()
        tb.up(cars=args.cars, lease_seconds=args.lease_seconds, timeout=args.timeout)
        print(f"[testbed] {tb.name!r} up in {time.monotonic() - started:.1f}s with {args.cars} cars")
        print(f"export KUBECONFIG={tb.kubeconfig}")
        return 0
    if args.action == "down":
        tb.down()
        print(f"[testbed] {tb.name!r} is down")
        return 0
    if tb.layout is None:
        print(f"test bed {tb.name!r} is not up; run: curbside testbed up --name {tb.name}", file=sys.stderr)
        return 1
    if args.action == "env":
        print(f"export KUBECONFIG={tb.kubeconfig}")
        print(f"export PATH={build.toolchain().bin_dir}:$PATH")
        return 0
    if args.action == "status":
        for name, alive in tb.running().items():
            print(f"{name:26} {'running' if alive else 'STOPPED'}")
        with tb.http() as client:
            cars = fleet.list_cars(client)
        ready = sum(1 for n in cars if fleet.is_ready(n))
        print(f"{'car nodes':26} {len(cars)} ({ready} Ready)")
        return 0
    raise AssertionError(args.action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curbside", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    tb = sub.add_parser("testbed", help="a local control plane with simulated car nodes")
    tb_sub = tb.add_subparsers(dest="action", required=True)
    up = tb_sub.add_parser("up", help="start (or finish starting) a test bed")
    up.add_argument("--cars", type=int, default=0, help="number of car Nodes (default: 0)")
    up.add_argument(
        "--lease-seconds",
        type=int,
        default=None,
        help="kwok node Lease duration (default: 40 s, longer above 2,000 cars)",
    )
    up.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for readiness")
    for action, text in (
        ("down", "stop every process and remove the test bed's folder"),
        ("env", "print the shell exports that point kubectl at the test bed"),
        ("status", "show which processes run and how many cars are Ready"),
    ):
        tb_sub.add_parser(action, help=text)
    for p in tb_sub.choices.values():
        p.add_argument("--name", default="default", help="test bed name (default: default)")
    for name, help_text in (
        ("operator", "run the Curbside operator (see `curbside operator --help`)"),
        ("agent", "run one car's agent (see `curbside agent --help`)"),
        ("sim", "run a simulated fleet of car agents (see `curbside sim --help`)"),
        ("worker", "run the inference worker next to tritonserver (see `curbside worker --help`)"),
        ("bench", "Curbside vs plain Kubernetes on a test bed (see `curbside bench --help`)"),
    ):
        passthrough = sub.add_parser(name, help=help_text, add_help=False)
        passthrough.add_argument("rest", nargs=argparse.REMAINDER)

    build = tb_sub.add_parser("build", help="build the control-plane binaries into the cache")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    tb_sub.add_parser("list", help="list test beds that have state on this machine")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `operator`, `agent`, `worker`, `sim` and `bench` own their flags: hand everything after
    # the subcommand over unparsed.
    if argv and argv[0] == "operator":
        from curbside_operator import main as operator_main

        return operator_main.main(argv[1:], prog="curbside operator")
    if argv and argv[0] == "agent":
        from curbside_agent import cli as agent_cli

        return int(agent_cli.main(argv[1:], prog="curbside agent"))
    if argv and argv[0] == "worker":
        from curbside_worker import cli as worker_cli

        return int(worker_cli.main(argv[1:], prog="curbside worker"))
    if argv and argv[0] == "sim":
        from curbside_sim import runner

        return int(runner.main(argv[1:]))
    if argv and argv[0] == "bench":
        from curbside_bench import cli as bench_cli

        return bench_cli.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "testbed":
        return _testbed(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    raise SystemExit(main())
