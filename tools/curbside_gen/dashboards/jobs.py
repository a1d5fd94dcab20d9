"""Jobs: progress, throughput, departures and re-runs, latency, the workers, and trust.

What an ML engineer and the fleet's operator want to see about InferenceJobs: units by state
per job, units committed per second, placements, departures handled (each one re-runs the
units the car held) and unit leases that expired, the departure reaction latency that
Curbside exists to keep low (p99 ≤ 2 s at 1,000 cars: docs/design.md, Numbers), what the workers on the
cars see (units by outcome, inference latency, Triton errors), and whether the results can be
trusted (results by validation verdict, the cost of replication).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from curbside_gen.dashboards import panels as p
from curbside_operator import metrics as m
from curbside_worker import metrics as worker

RATE = "[$__rate_interval]"


def dashboard() -> Dashboard:
    units = m.UNITS_NAME
    succeeded = f'{units}{{state="succeeded"}}'
    board = (
        p.new(
            "curbside-jobs",
            "Curbside / Jobs",
            "InferenceJob progress, throughput, departures and re-runs, latency, workers, trust.",
        )
        .with_row(p.row("Progress"))
        .with_panel(
            p.single(
                "Jobs by phase",
                "InferenceJobs the operator holds, by phase.",
                "none",
                p.query(f"sum by (phase) ({m.JOBS_NAME})", "{{phase}}"),
                width=8,
            )
        )
        .with_panel(
            p.single(
                "Units pending",
                "Work units waiting for a car, over every job.",
                "none",
                p.query(f'sum({units}{{state="pending"}})', "pending"),
                width=8,
            )
        )
        .with_panel(
            p.single(
                "Units running",
                "Work units leased to a car right now.",
                "none",
                p.query(f'sum({units}{{state="running"}})', "running"),
                width=8,
            )
        )
        .with_panel(
            p.series(
                "Units by state",
                "Work units of every job by state (pending, running, succeeded, failed).",
                "none",
                p.query(f"sum by (state) ({units})", "{{state}}"),
                stack=True,
            )
        )
        .with_panel(
            p.series(
                "Progress per job",
                "Share of each job's units that succeeded.",
                "percentunit",
                p.query(
                    f"sum by (namespace, job) ({succeeded}) / sum by (namespace, job) ({units})",
                    "{{namespace}}/{{job}}",
                ),
            )
        )
        .with_row(p.row("Throughput and churn"))
        .with_panel(
            p.series(
                "Units committed per second",
                "Growth of succeeded units per job (the ledger's commits).",
                "ops",
                p.query(
                    f"clamp_min(sum by (namespace, job) (deriv({succeeded}[$__rate_interval])), 0)",
                    "{{namespace}}/{{job}}",
                ),
            )
        )
        .with_panel(
            p.series(
                "Placements, departures and re-runs",
                "Inference pods created per second; cars whose work was moved (each re-runs the units it "
                "held); unit attempts that ran past their deadline.",
                "ops",
                p.query(f"sum(rate({m.PLACEMENTS_NAME}[$__rate_interval]))", "placements"),
                p.query(
                    f"sum by (reason) (rate({m.DEPARTURES_NAME}[$__rate_interval]))", "departures {{reason}}"
                ),
                p.query(f"sum(rate({m.UNITS_EXPIRED_NAME}[$__rate_interval]))", "unit leases expired"),
            )
        )
        .with_row(p.row("Departure reaction"))
        .with_panel(
            p.series(
                "Departure → work moved (p50, p99)",
                "From a car's report of leaving (observedAt) to its attempts fenced and its pod deleted.",
                "s",
                *p.quantiles(m.DEPARTURE_REACTION_NAME),
            )
        )
        .with_panel(
            p.histogram(
                "Departure reaction distribution",
                "The same latency as a heatmap of histogram buckets.",
                m.DEPARTURE_REACTION_NAME,
            )
        )
    )
    return _trust(_workers(board))


def _workers(board: Dashboard) -> Dashboard:
    """What the workers on the cars report (totals over every worker scraped)."""
    return (
        board.with_row(p.row("Workers"))
        .with_panel(
            p.series(
                "Units finished by workers",
                "Units the workers finished per second, by outcome: committed, fenced (the car's lease "
                "was taken back), released (stopped), bad_input, rejected.",
                "ops",
                p.query(f"sum by (outcome) (rate({worker.UNITS_NAME}{RATE}))", "{{outcome}}"),
                width=8,
            )
        )
        .with_panel(
            p.series(
                "Inference latency per unit",
                "Seconds one unit's inference takes through Triton, every batch of the unit (p50, p99).",
                "s",
                *p.quantiles(worker.INFERENCE_DURATION_NAME),
                width=8,
            )
        )
        .with_panel(
            p.series(
                "Triton errors",
                "Times Triton was unavailable or failed a request, per second (the unit is retried).",
                "ops",
                p.query(f"sum(rate({worker.TRITON_ERRORS_NAME}{RATE}))", "triton errors"),
                width=8,
            )
        )
    )


def _trust(board: Dashboard) -> Dashboard:
    """Trust: validation verdicts and what replication costs (quarantine and credit: fleet overview)."""
    return (
        board.with_row(p.row("Trust"))
        .with_panel(
            p.series(
                "Unit results by verdict",
                "Results judged by validation per second: valid, invalid, inconclusive.",
                "ops",
                p.query(f"sum by (verdict) (rate({m.RESULTS_NAME}{RATE}))", "{{verdict}}"),
            )
        )
        .with_panel(
            p.series(
                "Replication overhead",
                "Extra results beyond one per unit, per unit succeeded, by job (0.1: 10 % more compute "
                "than an unreplicated run).",
                "percentunit",
                p.query(f"max by (namespace, job) ({m.REPLICATION_OVERHEAD_NAME})", "{{namespace}}/{{job}}"),
            )
        )
    )
