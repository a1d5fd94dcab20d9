"""Fleet overview: how many cars, in which state, how many can compute, who went silent.

The questions a fleet platform engineer asks first: is the fleet there (cars reporting, by
state), how much of it is usable now (eligible cars), is something wrong with the cars or
with us (silent cars, a suspected control-plane partition), and how often cars leave.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from curbside_operator import metrics as m
from curbside_operator.dashboards import panels as p


def dashboard() -> Dashboard:
    vn = m.VEHICLENODES_NAME
    return (
        p.new(
            "curbside-fleet",
            "Curbside / Fleet overview",
            "Cars by state and eligibility, silent cars, partition guard, departures.",
        )
        .with_row(p.row("Now"))
        .with_panel(
            p.single(
                "Cars reporting",
                "VehicleNodes whose agent reports (every state but Offline).",
                "none",
                p.query(f'sum({vn}{{state!="Offline"}})', "cars"),
            )
        )
        .with_panel(
            p.single(
                "Eligible cars",
                "Cars whose owner's policy and state allow computing now: the usable capacity.",
                "none",
                p.query(f'sum({vn}{{eligible="true"}})', "eligible"),
            )
        )
        .with_panel(
            p.single(
                "Silent cars",
                "Recently alive cars whose Lease is older than the grace period.",
                "none",
                p.query(f"sum({m.SILENT_CARS_NAME})", "silent"),
            )
        )
        .with_panel(
            p.single(
                "Partition suspected",
                "1 while most of the fleet is silent at once: the operator holds back instead of "
                "marking every car Offline.",
                "bool",
                p.query(f"max({m.PARTITION_NAME})", "partition"),
            )
        )
        .with_row(p.row("Over time"))
        .with_panel(
            p.series(
                "Cars by state",
                "VehicleNodes by the state their agent reports (Driving, Parked, Charging, Asleep, Offline).",
                "none",
                p.query(f"sum by (state) ({vn})", "{{state}}"),
                stack=True,
            )
        )
        .with_panel(
            p.series(
                "Eligible and ineligible cars",
                "Cars the operator judges eligible to compute, and the rest.",
                "none",
                p.query(f"sum by (eligible) ({vn})", "eligible={{eligible}}"),
                stack=True,
            )
        )
        .with_panel(
            p.series(
                "Departures handled",
                "Cars whose work was fenced and pod deleted, per second, by why the work left.",
                "ops",
                p.query(f"sum by (reason) (rate({m.DEPARTURES_NAME}[$__rate_interval]))", "{{reason}}"),
            )
        )
        .with_panel(
            p.series(
                "Silent cars and Lease expiries",
                "Silent cars now, and cars marked Offline per second because their Lease went stale.",
                "none",
                p.query(f"sum({m.SILENT_CARS_NAME})", "silent cars"),
                p.query(f"sum(rate({m.LEASE_EXPIRIES_NAME}[$__rate_interval]))", "lease expiries/s"),
            )
        )
        .with_panel(
            p.series(
                "Car report → operator reaction",
                "From a car's observedAt to the operator's writes reacting to it (p50, p99).",
                "s",
                *p.quantiles(m.STATE_REACTION_NAME),
                width=24,
            )
        )
        .with_row(p.row("Trust and credit"))
        .with_panel(
            p.series(
                "Credit leaderboard",
                "The ten owners with the most validated compute-seconds (normalised to 100 TOPS).",
                "s",
                p.query(f"topk(10, {m.CREDIT_NAME})", "{{owner}}"),
            )
        )
        .with_panel(
            p.series(
                "Quarantined cars",
                "Cars caught returning wrong results: they get no work.",
                "none",
                p.query(f"max({m.QUARANTINED_NAME})", "quarantined"),
            )
        )
    )
