"""Every Prometheus metric the operator exports, declared once.

Why this exists: handlers import these objects and never create metrics inline, and the
dashboards (generated Python) import the ``*_NAME`` constants, so renaming a metric breaks
the build instead of silently emptying a panel. Names follow Prometheus conventions:
``curbside_`` prefix, base units, ``_total`` for counters.
"""

from __future__ import annotations

import prometheus_client

REGISTRY = prometheus_client.CollectorRegistry(auto_describe=True)

RECONCILE_DURATION_NAME = "curbside_reconcile_duration_seconds"
RECONCILE_ERRORS_NAME = "curbside_reconcile_errors_total"
API_WRITES_NAME = "curbside_api_writes_total"
VEHICLENODES_NAME = "curbside_vehiclenodes"
SILENT_CARS_NAME = "curbside_fleet_silent_cars"
PARTITION_NAME = "curbside_fleet_partition_suspected"
LEASE_EXPIRIES_NAME = "curbside_car_lease_expiries_total"
STATE_REACTION_NAME = "curbside_car_state_reaction_seconds"
PLACEMENTS_NAME = "curbside_placements_total"
DEPARTURES_NAME = "curbside_departures_handled_total"
DEPARTURE_REACTION_NAME = "curbside_departure_reaction_seconds"
UNITS_NAME = "curbside_job_units"
UNITS_EXPIRED_NAME = "curbside_unit_leases_expired_total"
JOBS_NAME = "curbside_inference_jobs"
INELIGIBLE_NAME = "curbside_vehiclenodes_ineligible"
FLEET_QUEUE_NAME = "curbside_fleet_queue_cars"
LEDGER_SIZE_NAME = "curbside_ledger_size_bytes"
# Credit and trust (docs/trust.md), from the ledger.
CREDIT_NAME = "curbside_owner_credit_seconds"
QUARANTINED_NAME = "curbside_cars_quarantined"
RESULTS_NAME = "curbside_unit_results_total"
REPLICATION_OVERHEAD_NAME = "curbside_replication_overhead_ratio"

RECONCILE_DURATION = prometheus_client.Histogram(
    RECONCILE_DURATION_NAME,
    "Time to reconcile one object, by kind.",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
RECONCILE_ERRORS = prometheus_client.Counter(
    RECONCILE_ERRORS_NAME,
    "Reconciliations that failed, by kind and error type.",
    ["kind", "reason"],
    registry=REGISTRY,
)
API_WRITES = prometheus_client.Counter(
    API_WRITES_NAME,
    "Writes the operator sent to the API server, by resource and verb.",
    ["resource", "verb"],
    registry=REGISTRY,
)
VEHICLENODES = prometheus_client.Gauge(
    VEHICLENODES_NAME,
    "Cars by reported state and eligibility.",
    ["state", "eligible"],
    registry=REGISTRY,
)
INELIGIBLE = prometheus_client.Gauge(
    INELIGIBLE_NAME,
    "Cars the operator judges ineligible, by reason (a car with several reasons counts under each).",
    ["reason"],
    registry=REGISTRY,
)
FLEET_QUEUE = prometheus_client.Gauge(
    FLEET_QUEUE_NAME,
    "Cars waiting for the fleet loop's workers, by priority (changed cars before the sweep's).",
    ["priority"],
    registry=REGISTRY,
)
SILENT_CARS = prometheus_client.Gauge(
    SILENT_CARS_NAME,
    "Recently alive cars whose Lease is older than the grace period.",
    registry=REGISTRY,
)
PARTITION = prometheus_client.Gauge(
    PARTITION_NAME,
    "1 while most of the fleet is silent at once (control-plane partition suspected), else 0.",
    registry=REGISTRY,
)
LEASE_EXPIRIES = prometheus_client.Counter(
    LEASE_EXPIRIES_NAME,
    "Cars marked Offline because their Lease went stale.",
    registry=REGISTRY,
)
STATE_REACTION = prometheus_client.Histogram(
    STATE_REACTION_NAME,
    "From the car's observedAt to the operator's writes reacting to it.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
    registry=REGISTRY,
)
PLACEMENTS = prometheus_client.Counter(
    PLACEMENTS_NAME,
    "Inference pods the operator created on cars.",
    registry=REGISTRY,
)
DEPARTURES = prometheus_client.Counter(
    DEPARTURES_NAME,
    "Cars whose work was fenced and whose pod was deleted, by why the work left.",
    ["reason"],
    registry=REGISTRY,
)
DEPARTURE_REACTION = prometheus_client.Histogram(
    DEPARTURE_REACTION_NAME,
    "From a car's report of leaving (observedAt) to its attempts fenced and its pod deleted.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
UNITS = prometheus_client.Gauge(
    UNITS_NAME,
    "Work units of each job by state (pending, running, succeeded, failed).",
    ["namespace", "job", "state"],
    registry=REGISTRY,
)
UNITS_EXPIRED = prometheus_client.Counter(
    UNITS_EXPIRED_NAME,
    "Unit attempts that ran past their deadline and went back to pending.",
    registry=REGISTRY,
)
JOBS = prometheus_client.Gauge(
    JOBS_NAME,
    "InferenceJobs the operator holds, by phase (Running, Succeeded, Failed).",
    ["phase"],
    registry=REGISTRY,
)
LEDGER_SIZE = prometheus_client.Gauge(
    LEDGER_SIZE_NAME,
    "Bytes of the work-unit ledger on disk (the SQLite file and its write-ahead log), read at scrape time.",
    registry=REGISTRY,
)
CREDIT = prometheus_client.Gauge(
    CREDIT_NAME,
    "Validated compute-seconds (normalised to a 100-TOPS accelerator) credited to each owner's cars.",
    ["owner"],
    registry=REGISTRY,
)
QUARANTINED = prometheus_client.Gauge(
    QUARANTINED_NAME,
    "Cars quarantined for wrong results (they get no work).",
    registry=REGISTRY,
)
RESULTS = prometheus_client.Counter(
    RESULTS_NAME,
    "Unit results judged by validation, by verdict (valid, invalid, inconclusive).",
    ["verdict"],
    registry=REGISTRY,
)
REPLICATION_OVERHEAD = prometheus_client.Gauge(
    REPLICATION_OVERHEAD_NAME,
    "Extra results beyond one per unit, divided by the units succeeded, per job.",
    ["namespace", "job"],
    registry=REGISTRY,
)
