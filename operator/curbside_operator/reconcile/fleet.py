"""The fleet as a whole: is the control plane partitioned from the cars?

Why this exists: when one car goes silent, it probably drove out of coverage. When most of
the fleet goes silent in the same moment, it is far more likely that *we* lost them (the API
server was down, the operator's network broke, an agent-side bug shipped). Kubernetes'
node-lifecycle controller has the same rule (``--unhealthy-zone-threshold`` = 0.55, and at
most ``--large-cluster-size-threshold`` it stops evicting): acting on a mass silence as
departures would move every unit at once and then move them all back.

So the operator compares the silent share of the cars that were alive recently with a
threshold. Above it, it suspects a partition: it raises an alert (an Event and a metric) and
freezes liveness decisions until enough cars are heard from again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta

from curbside_operator.reconcile import vehiclenode as car


@dataclasses.dataclass(frozen=True)
class FleetHealth:
    """How much of the fleet is silent, and whether that looks like our partition."""

    total: int
    silent: int
    partition_suspected: bool

    @property
    def silent_fraction(self) -> float:
        return self.silent / self.total if self.total else 0.0

    def describe(self) -> str:
        verdict = "control-plane partition suspected" if self.partition_suspected else "healthy"
        return f"{self.silent}/{self.total} cars silent ({self.silent_fraction:.0%}): {verdict}"


def assess(
    leases: Iterable[car.LeaseView | None],
    *,
    now: datetime,
    grace: timedelta,
    threshold: float = 0.55,
    min_silent: int = 3,
    memory: timedelta = timedelta(hours=1),
) -> FleetHealth:
    """Judge the fleet from its Leases.

    Only cars heard from within ``memory`` count: a car that has been parked in a garage
    without coverage for days is not evidence of anything happening now.
    """
    total = silent = 0
    for lease in leases:
        if lease is None or lease.renew_time is None or now - lease.renew_time > memory:
            continue
        total += 1
        if not car.lease_fresh(lease, now=now, grace=grace):
            silent += 1
    suspected = silent >= min_silent and total > 0 and silent / total >= threshold
    return FleetHealth(total=total, silent=silent, partition_suspected=suspected)
