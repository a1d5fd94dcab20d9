"""The values the ledger hands out and the operator reads: a job's summary, a car's standing,
and who a leasing car is.

Why this exists: the ledger (``dispatch``) produces these values, the planner (``reconcile``)
and the loops (``controllers``) consume them, and the layers keep ``reconcile`` from importing
``dispatch``. So they live here, below all three, as plain frozen dataclasses: no I/O, no
framework, nothing but the shape of the facts.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CarFacts:
    """Who a leasing car is, as the operator knows it (never as the car claims it).

    ``hardware`` is its hardware class: replicas of one unit, and probes, go only to cars of
    one class, so floating-point results are compared like with like. ``speed`` normalises
    compute-seconds into credit (tera-operations per second over a reference of 100) and
    ``watts`` turns them into energy.
    """

    owner: str
    hardware: str = ""
    speed: float = 1.0
    watts: float = 0.0


@dataclasses.dataclass(frozen=True)
class Standing:
    """A car's record: what ``kubectl get vn`` and the credit leaderboard show.

    ``streak`` is its longest current run of valid results on any model; ``trusted`` lists the
    models it is trusted on. Credit counts only valid work (and results accepted on trust,
    which are taken back if the car is later quarantined).
    """

    car: str
    owner: str
    valid: int
    invalid: int
    streak: int
    trusted: tuple[str, ...]
    credit_seconds: float
    energy_joules: float
    quarantine: str | None


@dataclasses.dataclass(frozen=True)
class Summary:
    """A job at a glance, for its throttled status. pending+running+succeeded+failed == total.

    ``reruns`` counts attempts that ended without a result (released, fenced, expired or
    failed), i.e. work that was or may have been done twice. ``departures`` counts the
    ``fence_car`` calls that moved at least one of the job's units.
    """

    total: int
    pending: int
    running: int
    succeeded: int
    failed: int
    completed_intervals: str
    reruns: int
    cars_in_use: frozenset[str]
    departures: int = 0
    attempts: int = 0
    results: int = 0
    verified: int = 0
    open_hardware: frozenset[str] | None = None
    """The hardware classes the job's open work can run on; None when any car could take
    some (a fresh unit, or one not pinned to a class). A replicated unit's later results must
    come from its first result's class, so the tail of a job may want one class only."""

    @property
    def overhead(self) -> float:
        """Results beyond one per succeeded unit, per succeeded unit (0 when nothing succeeded)."""
        return (self.results - self.succeeded) / self.succeeded if self.succeeded else 0.0

    @property
    def done(self) -> bool:
        """Every unit is decided: committed or out of attempts."""
        return self.succeeded + self.failed == self.total
