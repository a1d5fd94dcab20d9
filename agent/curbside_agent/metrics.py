"""Every Prometheus metric the car agent exports, declared once.

Why this module exists: metric names are an API (dashboards and alerts query them), so they
are declared in one place, with Prometheus naming (``_total`` counters, base units in the
name, ``curbside_agent_`` prefix), and code elsewhere imports the objects instead of calling
``Counter(...)`` inline. Dashboards import the ``*_NAME`` constants, so renaming a metric
breaks the dashboard build (``tools/curbside_gen/dashboards``) instead of silently emptying a
panel.

The metrics live in their own ``REGISTRY`` rather than the process-wide default: the fleet
simulator runs thousands of agents (and possibly the operator) in one process, and the
agent's exporter should serve only agent metrics. Nothing is labelled by car: in the
simulator the values are fleet totals (``curbside_agent_eligible`` is then the number of
eligible simulated cars), on a real car they are that car's.

``serve`` is how every Curbside process on the car side exposes them: the agent (this
registry), the worker (its own) and the simulator (both on one port).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

PREFIX = "curbside_agent_"

STATE_TRANSITIONS_NAME = PREFIX + "state_transitions_total"
INTERLOCK_STOPS_NAME = PREFIX + "interlock_stops_total"
INTERLOCK_KILLS_NAME = PREFIX + "interlock_kills_total"
INTERLOCK_STOP_LATENCY_NAME = PREFIX + "interlock_stop_latency_seconds"
LEASE_RENEW_DURATION_NAME = PREFIX + "lease_renew_duration_seconds"
LEASE_RENEW_ERRORS_NAME = PREFIX + "lease_renew_errors_total"
STATUS_PATCHES_NAME = PREFIX + "status_patches_total"
STATUS_PATCH_ERRORS_NAME = PREFIX + "status_patch_errors_total"
SIGNAL_ERRORS_NAME = PREFIX + "signal_errors_total"
ELIGIBLE_NAME = PREFIX + "eligible"

# Counters are declared without the ``_total`` suffix: prometheus_client appends it.
STATE_TRANSITIONS = Counter(
    STATE_TRANSITIONS_NAME.removesuffix("_total"),
    "Car state transitions seen by the agent (Driving, Parked, Charging, Asleep).",
    ["from_state", "to_state"],
    registry=REGISTRY,
)
INTERLOCK_STOPS = Counter(
    INTERLOCK_STOPS_NAME.removesuffix("_total"),
    "Times the interlock stopped local work, by reason (NotParked when the car drove off).",
    ["reason"],
    registry=REGISTRY,
)
INTERLOCK_KILLS = Counter(
    INTERLOCK_KILLS_NAME.removesuffix("_total"),
    "Worker processes killed with SIGKILL because they outlived the grace period.",
    registry=REGISTRY,
)
INTERLOCK_STOP_LATENCY = Histogram(
    INTERLOCK_STOP_LATENCY_NAME,
    "Seconds from seeing the car leave Park to the stop being delivered to every worker.",
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)
LEASE_RENEW_DURATION = Histogram(
    LEASE_RENEW_DURATION_NAME,
    "Seconds one Lease renewal took, from request to answer.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
LEASE_RENEW_ERRORS = Counter(
    LEASE_RENEW_ERRORS_NAME.removesuffix("_total"),
    "Lease renewals that failed (the car keeps its local policy; the operator will see the Lease age).",
    registry=REGISTRY,
)
STATUS_PATCHES = Counter(
    STATUS_PATCHES_NAME.removesuffix("_total"),
    "VehicleNode status patches sent (only when something meaningful changed).",
    registry=REGISTRY,
)
STATUS_PATCH_ERRORS = Counter(
    STATUS_PATCH_ERRORS_NAME.removesuffix("_total"),
    "VehicleNode status patches that failed (retried on the next tick).",
    registry=REGISTRY,
)
SIGNAL_ERRORS = Counter(
    SIGNAL_ERRORS_NAME.removesuffix("_total"),
    "Vehicle signal reads that failed (unreachable source or invalid document).",
    registry=REGISTRY,
)
ELIGIBLE = Gauge(
    ELIGIBLE_NAME,
    "Cars whose local owner policy currently allows computing (1 or 0 on a car; a sum in the simulator).",
    registry=REGISTRY,
)

ALL_NAMES: tuple[str, ...] = (
    STATE_TRANSITIONS_NAME,
    INTERLOCK_STOPS_NAME,
    INTERLOCK_KILLS_NAME,
    INTERLOCK_STOP_LATENCY_NAME,
    LEASE_RENEW_DURATION_NAME,
    LEASE_RENEW_ERRORS_NAME,
    STATUS_PATCHES_NAME,
    STATUS_PATCH_ERRORS_NAME,
    SIGNAL_ERRORS_NAME,
    ELIGIBLE_NAME,
)
"""Every metric name this module declares (checked by a unit test against the registry)."""


def serve(port: int, host: str = "127.0.0.1", *registries: CollectorRegistry) -> Callable[[], None]:
    """Serve ``registries`` (default: the agent's) as one /metrics page on ``host:port``; return
    a function that stops it. Loopback by default: a car's exporter is for a local scraper or a
    port-forward; the chart binds the agent's pod IP (the cluster's pod network, never the
    car's own networks)."""
    served = CollectorRegistry()
    for registry in registries or (REGISTRY,):
        served.register(registry)
    server, thread = start_http_server(port, addr=host, registry=served)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
