"""Operator health: reconcile latency and errors, the writes the operator sends, the ledger.

Whether the operator keeps up (reconcile latency per kind), fails (errors by kind and
reason), how much it costs the API server (writes per resource and verb: an unchanged car
should cost none), and how large its work-unit ledger grows on its volume.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from curbside_gen.dashboards import panels as p
from curbside_operator import metrics as m


def dashboard() -> Dashboard:
    return (
        p.new(
            "curbside-operator",
            "Curbside / Operator health",
            "Reconcile latency and errors, API writes by resource and verb, ledger size.",
        )
        .with_row(p.row("Reconcile"))
        .with_panel(
            p.series(
                "Reconcile latency",
                "Time to reconcile one object, p50 and p99 by kind.",
                "s",
                *p.quantiles(m.RECONCILE_DURATION_NAME, by="kind"),
            )
        )
        .with_panel(
            p.series(
                "Reconciles per second",
                "Objects reconciled per second, by kind.",
                "ops",
                p.query(
                    f"sum by (kind) (rate({m.RECONCILE_DURATION_NAME}_count[$__rate_interval]))", "{{kind}}"
                ),
            )
        )
        .with_panel(
            p.series(
                "Reconcile errors",
                "Failed reconciliations per second, by kind and error type.",
                "ops",
                # A kind reconciled without a single error shows as 0 (the error counter has no
                # series before its first error), not as "No data".
                p.query(
                    f"sum by (kind, reason) (rate({m.RECONCILE_ERRORS_NAME}[$__rate_interval])) or on (kind) "
                    f"(sum by (kind) (rate({m.RECONCILE_DURATION_NAME}_count[$__rate_interval])) * 0)",
                    "{{kind}} {{reason}}",
                ),
            )
        )
        .with_panel(
            p.series(
                "Fleet queue",
                "Cars waiting for the fleet loop's workers: changed cars (a report, a Lease gone "
                "stale) go before the periodic sweep's. A changed queue that does not empty means "
                "the operator judges cars later than they change.",
                "short",
                p.query(f"sum by (priority) ({m.FLEET_QUEUE_NAME})", "{{priority}}"),
            )
        )
        .with_panel(
            p.series(
                "API writes",
                "Writes the operator sent to the API server per second, by resource and verb.",
                "ops",
                p.query(
                    f"sum by (resource, verb) (rate({m.API_WRITES_NAME}[$__rate_interval]))",
                    "{{verb}} {{resource}}",
                ),
            )
        )
        .with_row(p.row("Ledger"))
        .with_panel(
            p.series(
                "Ledger size",
                "Bytes of the work-unit ledger on the operator's volume (SQLite file and write-ahead "
                "log): size the volume (operator.persistence.size) with room to grow.",
                "bytes",
                p.query(f"max({m.LEDGER_SIZE_NAME})", "ledger"),
                width=24,
            )
        )
    )
