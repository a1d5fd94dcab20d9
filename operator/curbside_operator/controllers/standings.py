"""Carries each car's record from the ledger (trust, credit, quarantine) to its VehicleNode,
and tells the dispatcher who a leasing car is.

Why this exists: verdicts happen in the ledger, one transaction per result, thousands a
minute; the VehicleNode is what owners and ``kubectl get vn`` see. Writing a car's status on
every verdict would cost one API write per result, so this module reads only the cars whose
record changed (the ledger numbers its changes) and hands them to the fleet loop, which writes
through the same level-based ``reconcile_car`` as everything else: at once when the car's
trust level or quarantine changed (a quarantined car must stop getting work now), and credit
alone at most every ``FLUSH_SECONDS`` per car.

The dispatcher never believes a car about who it is: ``car_facts`` answers from the
operator's view of the fleet (owner, hardware class, speed, power).
"""

from __future__ import annotations

import asyncio
import logging
import time

from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator import metrics
from curbside_operator.controllers.fleet import FleetState
from curbside_operator.dispatch.server import Dispatcher
from curbside_operator.facts import CarFacts, Standing

log = logging.getLogger(__name__)

REFERENCE_TOPS = 100.0
"""Credit is normalised to an accelerator of this many TOPS: a car twice as fast earns the same
credit for a unit in half the time."""
FLUSH_SECONDS = 30.0
POLL_SECONDS = 1.0


def car_facts(fleet: FleetState, name: str) -> CarFacts | None:
    """Who ``name`` is, from its VehicleNode; None for a car the operator does not know."""
    car = fleet.cars.get(name)
    if car is None:
        return None
    hw = car.spec.hardware
    return CarFacts(
        owner=car.spec.vehicle.owner,
        hardware=hw.accelerator,
        speed=hw.tops / REFERENCE_TOPS,
        watts=float(hw.power_watts or 0),
    )


def record_of(s: Standing) -> tuple[vn.Trust, vn.Credit]:
    """The VehicleNode's view of a ledger standing."""
    if s.quarantine is not None:
        level = vn.TrustLevel.QUARANTINED
    elif s.trusted:
        level = vn.TrustLevel.TRUSTED
    elif s.streak > 0:
        level = vn.TrustLevel.PROBATION
    else:
        level = vn.TrustLevel.UNTRUSTED
    judged = s.valid + s.invalid
    trust = vn.Trust(
        level=level,
        valid_streak=s.streak,
        error_rate=round(s.invalid / judged, 4) if judged else 0.0,
        trusted_models=list(s.trusted[:32]),
        quarantine_reason=s.quarantine,
    )
    credit = vn.Credit(
        validated_units=s.valid,
        rejected_units=s.invalid,
        compute_seconds=round(s.credit_seconds, 1),
        energy_kwh=round(s.energy_joules / 3.6e6, 6),
    )
    return trust, credit


class StandingsSync:
    """Polls the ledger for changed records and hands them to the fleet loop."""

    def __init__(self, fleet: FleetState, dispatcher: Dispatcher) -> None:
        self.fleet, self.dispatcher = fleet, dispatcher
        self.seq = 0
        self.pending: dict[str, tuple[vn.Trust, vn.Credit]] = {}
        self.flushed = time.monotonic()
        self.owners: dict[str, dict[str, float]] = {}
        """Owner -> car -> credit-seconds, for the leaderboard gauge."""
        self.judged: dict[str, tuple[int, int]] = {}
        """Car -> (valid, invalid) results as last read, for the verdict counter."""
        self.primed = False
        """Whether the first read happened: what the ledger held then was counted by an earlier run."""

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                log.exception("reading car standings failed; trying again")
            await asyncio.sleep(POLL_SECONDS)

    async def step(self) -> None:
        first, self.primed = not self.primed, True
        self.seq, changed = await self.dispatcher.standings(self.seq)
        for s in changed:
            valid, invalid = self.judged.get(s.car, (s.valid, s.invalid) if first else (0, 0))
            metrics.RESULTS.labels(verdict="valid").inc(max(0, s.valid - valid))
            metrics.RESULTS.labels(verdict="invalid").inc(max(0, s.invalid - invalid))
            self.judged[s.car] = (s.valid, s.invalid)
            record = record_of(s)
            held = self.fleet.records.get(s.car)
            if held is None or held[0].level != record[0].level:
                self._hand_over(s.car, record)
                self.pending.pop(s.car, None)
            else:
                self.pending[s.car] = record
            self.owners.setdefault(s.owner, {})[s.car] = s.credit_seconds
        if self.pending and time.monotonic() - self.flushed >= FLUSH_SECONDS:
            for name, record in self.pending.items():
                self._hand_over(name, record)
            self.pending.clear()
            self.flushed = time.monotonic()
        if changed:
            self._export()

    def _hand_over(self, name: str, record: tuple[vn.Trust, vn.Credit]) -> None:
        self.fleet.records[name] = record
        if name in self.fleet.cars:
            self.fleet.touch(name)

    def _export(self) -> None:
        records = self.fleet.records.values()  # a quarantine is handed over at once, never pending
        metrics.QUARANTINED.set(sum(t.level == vn.TrustLevel.QUARANTINED for t, _ in records))
        for owner, cars in self.owners.items():
            metrics.CREDIT.labels(owner=owner).set(sum(cars.values()))
