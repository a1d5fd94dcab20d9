"""Operator health: reconcile latency and errors, and the writes the operator sends.

Whether the operator keeps up (reconcile latency per kind), fails (errors by kind and
reason), and how much it costs the API server (writes per resource and verb: an unchanged
car should cost none, DESIGN §8).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from curbside_operator import metrics as m
from curbside_operator.dashboards import panels as p


def dashboard() -> Dashboard:
    return (
        p.new(
            "curbside-operator",
            "Curbside / Operator health",
            "Reconcile latency and errors, API writes by resource and verb.",
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
                p.query(
                    f"sum by (kind, reason) (rate({m.RECONCILE_ERRORS_NAME}[$__rate_interval]))",
                    "{{kind}} {{reason}}",
                ),
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
    )
