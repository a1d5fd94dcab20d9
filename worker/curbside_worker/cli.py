"""``curbside-worker``: the container that runs next to ``tritonserver`` in an inference pod.

Why this exists: the operator's pod template sets the worker's configuration through
environment variables (``CURBSIDE_TOKEN_FILE``: the pod's projected ServiceAccount token, which
the kubelet rotates; the worker re-reads it as it changes), and people debugging a car run the
same thing with flags. Every flag has a ``CURBSIDE_*`` variable; a flag wins.

``--metrics-port`` serves the worker's metrics (units by outcome, inference latency, Triton
errors) on ``--metrics-host``, loopback unless told otherwise.

SIGTERM and SIGINT set the worker's stop event: the kubelet's and the car interlock's stop
both end in a released lease and exit code 0 well inside a pod's grace period.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from curbside_worker import metrics
from curbside_worker.runner import Worker, WorkerConfig

ENV_PREFIX = "CURBSIDE_"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"), default)


def parser(prog: str = "curbside-worker") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Lease units, infer through Triton, commit.")

    def add(flag: str, *, default: str | None = None, help: str, **kwargs: object) -> None:
        name = flag.removeprefix("--")
        env = ENV_PREFIX + name.upper().replace("-", "_")
        p.add_argument(flag, default=_env(name, default), help=f"{help} (${env})", **kwargs)  # type: ignore[arg-type]

    add("--dispatcher-url", help="dispatcher base URL, e.g. http://curbside-dispatcher:8080")
    add("--job-namespace", help="the InferenceJob's namespace")
    add("--job-name", help="the InferenceJob's name")
    add("--car", help="this car's node name")
    add("--owner", default="", help="this car's owner (replicas go to distinct owners)")
    add("--token", help="fixed bearer token for the dispatcher (debugging)")
    add("--token-file", help="file holding the bearer token (the projected token; re-read as it rotates)")
    add("--triton-url", default="127.0.0.1:8001", help="Triton gRPC host:port")
    add("--model", help="Triton model name (the job's spec.model.name)")
    add("--batch-size", default="8", help="items per Triton request", type=int)
    add("--inflight", default="2", help="Triton requests outstanding at once", type=int)
    add("--max-units", help="exit after committing this many units", type=int)
    add("--idle-exit", help="exit after this many seconds without work", type=float)
    add("--ready-timeout", default="300", help="seconds to wait for Triton", type=float)
    add("--metrics-port", default="0", help="Prometheus metrics port (0: none)", type=int)
    add("--metrics-host", default="127.0.0.1", help="address the metrics port listens on")
    add("--log-level", default="INFO", help="logging level")
    return p


def config_from(args: argparse.Namespace) -> WorkerConfig:
    token, token_file = args.token or "", None
    if not token and args.token_file:
        token_file = args.token_file
        if not Path(token_file).read_text(encoding="utf-8").strip():  # unreadable: OSError, exit 64
            raise ValueError(f"--token-file {token_file} is empty")
    missing = [
        flag
        for flag, value in (
            ("--dispatcher-url", args.dispatcher_url),
            ("--job-namespace", args.job_namespace),
            ("--job-name", args.job_name),
            ("--car", args.car),
            ("--token or --token-file", token or token_file),
            ("--model", args.model),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"missing: {', '.join(missing)}")
    if args.batch_size < 1 or args.inflight < 1:
        raise ValueError("--batch-size and --inflight must be at least 1")
    return WorkerConfig(
        dispatcher_url=args.dispatcher_url,
        namespace=args.job_namespace,
        job=args.job_name,
        car=args.car,
        owner=args.owner,
        token=token,
        token_file=token_file,
        triton_url=args.triton_url,
        model=args.model,
        batch_size=args.batch_size,
        inflight=args.inflight,
        max_units=args.max_units,
        idle_exit_s=args.idle_exit,
        ready_timeout_s=args.ready_timeout,
    )


def main(argv: Sequence[str] | None = None, *, prog: str = "curbside-worker") -> int:
    args = parser(prog).parse_args(argv)
    logging.basicConfig(
        level=str(args.log_level).upper(),
        format="%(asctime)s worker %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        config = config_from(args)
    except (ValueError, OSError) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 64
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop_metrics = metrics.serve(args.metrics_port, args.metrics_host) if args.metrics_port else None
    worker = Worker(config, stop=stop)
    try:
        code = worker.run()
    finally:
        worker.close()
        if stop_metrics is not None:
            stop_metrics()
    stats = worker.stats
    logging.getLogger(__name__).info(
        "exit %d: committed %d (%d duplicate), released %d, fenced %d, items %d",
        code,
        stats.committed,
        stats.duplicates,
        stats.released,
        stats.fenced,
        stats.items,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
