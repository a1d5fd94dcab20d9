"""The operator's composition root: ``curbside-operator`` (the operator image's entry point).

Why this exists: one place decides what the running operator is made of. Importing
``curbside_operator.handlers`` registers every kopf hook (they reach the controllers in
``controllers/``, which call the pure ``reconcile`` layer and write through ``kube/``); this
module configures logging and starts kopf. The developer's ``curbside operator`` command
(``curbside_cli``) calls ``main`` here, so both start the same thing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence


def build_parser(prog: str = "curbside-operator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the Curbside operator (kopf) against the current kubeconfig."
    )
    parser.add_argument("--namespace", action="append", help="watch InferenceJobs only here (repeatable)")
    parser.add_argument(
        "--liveness", default="", help="liveness endpoint, e.g. http://127.0.0.1:8080/healthz"
    )
    parser.add_argument("--verbose", action="store_true")
    return parser


def run(*, namespaces: Sequence[str], liveness: str, verbose: bool) -> int:
    """Register every handler and run kopf until it stops."""
    import kopf

    import curbside_operator.handlers  # noqa: F401  (registers every handler)

    # One handler on the root logger (kopf's): a second one would print every line twice.
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.FULL)
    if not verbose:
        # A line per API request and per handled pod event: at 10,000 cars that is thousands
        # of lines a second, and formatting them is a measurable share of the operator's CPU.
        for noisy in ("httpx", "httpx2", "kopf.objects"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=True,
            liveness_endpoint=liveness or None,
        )
    )
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "curbside-operator") -> int:
    args = build_parser(prog).parse_args(argv)
    return run(namespaces=args.namespace or [], liveness=args.liveness, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())
