"""Every Prometheus metric the inference worker exports, declared once.

Why this module exists: like the operator's and the agent's metric modules, names are an API
(dashboards and alerts query them), so they are declared here with Prometheus naming
(``curbside_worker_`` prefix, base units, ``_total`` counters) and code imports the objects.
The worker's own ``REGISTRY`` keeps them apart from the agent's and the operator's when the
fleet simulator runs many workers in one process (the values are then totals over them).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

PREFIX = "curbside_worker_"

UNITS_NAME = PREFIX + "units_total"
INFERENCE_DURATION_NAME = PREFIX + "inference_duration_seconds"
TRITON_ERRORS_NAME = PREFIX + "triton_errors_total"

OUTCOMES = ("committed", "fenced", "released", "bad_input", "rejected")
"""Values of the ``outcome`` label of ``curbside_worker_units_total``."""

# Counters are declared without the ``_total`` suffix: prometheus_client appends it.
UNITS = Counter(
    UNITS_NAME.removesuffix("_total"),
    "Work units the worker finished, by outcome (committed, fenced, released, bad_input, rejected).",
    ["outcome"],
    registry=REGISTRY,
)
INFERENCE_DURATION = Histogram(
    INFERENCE_DURATION_NAME,
    "Seconds one unit's inference took through Triton (every batch of the unit).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
    registry=REGISTRY,
)
TRITON_ERRORS = Counter(
    TRITON_ERRORS_NAME.removesuffix("_total"),
    "Times Triton was unavailable or failed a request (the unit is retried after a back-off).",
    registry=REGISTRY,
)

ALL_NAMES: tuple[str, ...] = (UNITS_NAME, INFERENCE_DURATION_NAME, TRITON_ERRORS_NAME)
"""Every metric name this module declares (checked by the metrics lint against the registry)."""


def serve(port: int, host: str = "127.0.0.1") -> Callable[[], None]:
    """Serve this registry as /metrics on ``host:port`` (the pod's IP in the operator's pods);
    return a function that stops the server."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
