"""Fleet overview: how many cars, in which state, how many can compute and why the rest cannot.

The questions a fleet platform engineer asks first: is the fleet there (cars reporting, by
state), how much of it is usable now (eligible cars) and what keeps the rest out (ineligibility
reasons), is something wrong with the cars or with us (silent cars, a suspected control-plane
partition), how often cars leave, whose cars contribute most (the credit leaderboard), and
whether the agents on the cars are healthy (Lease renewals, the interlock).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from curbside_agent import metrics as agent
from curbside_gen.dashboards import panels as p
from curbside_operator import metrics as m

RATE = "[$__rate_interval]"


def dashboard() -> Dashboard:
    vn = m.VEHICLENODES_NAME
    board = (
        p.new(
            "curbside-fleet",
            "Curbside / Fleet overview",
            "Cars by state, eligible capacity and ineligibility reasons, departures, credit "
            "leaderboard, the agents' health.",
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
                "Eligible capacity",
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
                "Cars the operator judges eligible to compute, and the rest; and the cars that judge "
                "themselves eligible by their owner's policy (the agents' own view).",
                "none",
                p.query(f"sum by (eligible) ({vn})", "eligible={{eligible}}"),
                p.query(f"sum({agent.ELIGIBLE_NAME})", "eligible (agents' view)"),
            )
        )
        .with_panel(
            p.series(
                "Why cars are ineligible",
                "Ineligible cars by reason (NotParked, BatteryLow, OutsideTimeWindow, ...); a car with "
                "several reasons counts under each.",
                "none",
                p.query(f"sum by (reason) ({m.INELIGIBLE_NAME})", "{{reason}}"),
            )
        )
        .with_panel(
            p.series(
                "Departures handled",
                "Cars whose work was fenced and pod deleted, per second, by why the work left.",
                "ops",
                p.query(f"sum by (reason) (rate({m.DEPARTURES_NAME}{RATE}))", "{{reason}}"),
            )
        )
        .with_panel(
            p.series(
                "Silent cars and Lease expiries",
                "Silent cars now, and cars marked Offline per second because their Lease went stale.",
                "none",
                p.query(f"sum({m.SILENT_CARS_NAME})", "silent cars"),
                p.query(f"sum(rate({m.LEASE_EXPIRIES_NAME}{RATE}))", "lease expiries/s"),
            )
        )
        .with_panel(
            p.series(
                "Car report → operator reaction",
                "From a car's observedAt to the operator's writes reacting to it (p50, p99).",
                "s",
                *p.quantiles(m.STATE_REACTION_NAME),
            )
        )
        .with_row(p.row("Trust and credit"))
        .with_panel(
            p.ranking(
                "Credit leaderboard",
                "The ten owners with the most validated compute-seconds (normalised to 100 TOPS; read "
                "from the ledger, so it survives operator restarts).",
                "s",
                p.query(f"topk(10, sum by (owner) ({m.CREDIT_NAME}))", "{{owner}}"),
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
    return _agents(board)


def _agents(board: Dashboard) -> Dashboard:
    """The cars' side: the agents' Lease renewals, reports and interlock (fleet totals)."""
    return (
        board.with_row(p.row("Agents on the cars"))
        .with_panel(
            p.series(
                "Lease renewal latency",
                "Seconds one Lease renewal takes from the car, request to answer (p50, p99).",
                "s",
                *p.quantiles(agent.LEASE_RENEW_DURATION_NAME),
            )
        )
        .with_panel(
            p.series(
                "Agent reports and errors",
                "Status patches the agents send (only on meaningful change), and failed patches, Lease "
                "renewals and signal reads, per second.",
                "ops",
                p.query(f"sum(rate({agent.STATUS_PATCHES_NAME}{RATE}))", "status patches"),
                p.query(f"sum(rate({agent.STATUS_PATCH_ERRORS_NAME}{RATE}))", "status patch errors"),
                p.query(f"sum(rate({agent.LEASE_RENEW_ERRORS_NAME}{RATE}))", "lease renew errors"),
                p.query(f"sum(rate({agent.SIGNAL_ERRORS_NAME}{RATE}))", "signal errors"),
            )
        )
        .with_panel(
            p.series(
                "Car state transitions",
                "State changes the agents see per second, by the state entered.",
                "ops",
                p.query(f"sum by (to_state) (rate({agent.STATE_TRANSITIONS_NAME}{RATE}))", "{{to_state}}"),
            )
        )
        .with_panel(
            p.series(
                "Interlock stops",
                "Times the interlock stopped local work per second, by reason, and workers killed "
                "because they outlived the grace period.",
                "ops",
                p.query(f"sum by (reason) (rate({agent.INTERLOCK_STOPS_NAME}{RATE}))", "{{reason}}"),
                p.query(f"sum(rate({agent.INTERLOCK_KILLS_NAME}{RATE}))", "killed"),
            )
        )
        .with_panel(
            p.series(
                "Interlock stop latency",
                "From the agent seeing the car leave Park to the stop delivered to every worker (p50, p99).",
                "s",
                *p.quantiles(agent.INTERLOCK_STOP_LATENCY_NAME),
                width=24,
            )
        )
    )
