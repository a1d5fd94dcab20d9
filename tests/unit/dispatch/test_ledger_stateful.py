"""Random sequences of lease, renew, complete, replay, release, fence, expire and clock ticks
against one ledger, checking after every step what must always hold:

- every unit commits at most once, and a committed unit never changes or disappears;
- an attempt the ledger ended (released, fenced, expired) never acts again, and attempt
  numbers are never reused;
- a replayed submission gets the same commit id;
- a car never gets a unit again that it failed (an error, an expiry, a charged departure), and
  no renewal pushes a deadline past the attempt's maximum lifetime (``sqlite_limits``);
- no two live attempts of a unit on one car, nor on one owner when owners must differ;
- the summary adds up and agrees with the committed results; ``verify`` finds nothing.

Cars c0..c5 belong to three owners, so distinct-owner replication is tight but possible. Some
cars are dishonest and submit their own output, so quorums are contested.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from curbside_api import intervals
from curbside_operator.dispatch import sqlite_limits
from curbside_operator.dispatch.ledger import Commit, Fenced
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from tests.support.ledger import JOB, T0

CARS = [f"c{i}" for i in range(6)]
UNITS = 4
TIMEOUT = timedelta(seconds=10)
cars = st.sampled_from(CARS)


def owner(car: str) -> str:
    return f"o{int(car[1:]) % 3}"


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = SqliteLedger(":memory:")
        self.now = T0
        self.distinct = True
        self.held: list[tuple[str, int, int]] = []  # (car, unit, attempt) handed out
        self.ended: set[tuple[int, int]] = set()  # (unit, attempt) the ledger said it ended
        self.epoch = [0] * UNITS
        self.commits: dict[int, str] = {}
        self.accepted: list[tuple[str, int, int, str, Commit]] = []
        self.issued: dict[tuple[int, int], datetime] = {}
        self.failed: set[tuple[str, int]] = set()  # (car, unit) the car is known to have failed

    @initialize(data=st.data(), replicas=st.integers(1, 3), distinct=st.booleans())
    def add_job(self, data: st.DataObject, replicas: int, distinct: bool) -> None:
        quorum = data.draw(st.integers(1, replicas), label="quorum")
        self.distinct = distinct
        self.ledger.add_job(
            JOB,
            units=UNITS,
            unit_timeout=TIMEOUT,
            max_attempts=2,
            replicas=replicas,
            quorum=quorum,
            distinct_owners=distinct,
        )

    def teardown(self) -> None:
        self.ledger.close()

    # -- steps --------------------------------------------------------------------------------
    @rule(car=cars)
    def lease(self, car: str) -> None:
        got = self.ledger.lease(JOB, car=car, owner=owner(car), now=self.now)
        if got is None:
            return
        assert (got.unit, got.attempt) not in self.ended
        if got.resumed:
            assert (car, got.unit, got.attempt) in self.held
            return
        assert got.attempt == self.epoch[got.unit] + 1, "attempt numbers only grow, one at a time"
        assert got.unit not in self.commits, "a committed unit is never leased again"
        assert (car, got.unit) not in self.failed, f"{car} got unit {got.unit} again after failing it"
        self.epoch[got.unit] = got.attempt
        self.issued[got.unit, got.attempt] = self.now
        self.held.append((car, got.unit, got.attempt))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        car, unit, attempt = data.draw(st.sampled_from(self.held))
        try:
            deadline = self.ledger.renew(JOB, unit, attempt, car=car, now=self.now)
        except Fenced:
            return
        assert (unit, attempt) not in self.ended
        assert deadline <= self.issued[unit, attempt] + sqlite_limits.MAX_LEASE_TIMEOUTS * TIMEOUT

    @precondition(lambda self: self.held)
    @rule(data=st.data(), honest=st.booleans(), impostor=st.none() | cars)
    def complete(self, data: st.DataObject, honest: bool, impostor: str | None) -> None:
        car, unit, attempt = data.draw(st.sampled_from(self.held))
        sender = impostor or car
        out = f"good-{unit}" if honest else f"forged-{sender}"
        try:
            done = self.ledger.complete(
                JOB, unit, attempt, car=sender, output_hash=out, result_ref="ref", now=self.now
            )
        except Fenced:
            return
        assert sender == car, "only the attempt's own car may submit for it"
        assert (unit, attempt) not in self.ended, "an ended attempt must never submit"
        if done.committed and not done.duplicate:
            assert unit not in self.commits, f"unit {unit} committed twice"
            self.commits[unit] = done.commit_id
        self.accepted.append((car, unit, attempt, out, done))

    @precondition(lambda self: self.accepted)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        car, unit, attempt, out, first = data.draw(st.sampled_from(self.accepted))
        try:
            again = self.ledger.complete(
                JOB, unit, attempt, car=car, output_hash=out, result_ref="ref", now=self.now
            )
        except Fenced:
            assert not first.committed, "a committed submission's replay must be answered the same"
            assert self.commits.get(unit) != first.commit_id, "only a result that lost the vote is refused"
            return
        assert again.duplicate
        assert again.commit_id == first.commit_id
        assert again.committed == (self.commits.get(unit) == again.commit_id)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), failed=st.booleans())
    def release(self, data: st.DataObject, failed: bool) -> None:
        car, unit, attempt = data.draw(st.sampled_from(self.held))
        if self.ledger.release(JOB, unit, attempt, car=car, now=self.now, error="boom" if failed else None):
            assert (unit, attempt) not in self.ended
            self.ended.add((unit, attempt))
            if failed:
                self.failed.add((car, unit))

    @rule(car=cars, charge=st.booleans())
    def fence(self, car: str, charge: bool) -> None:
        for ended in self.ledger.fence_car(JOB, car, now=self.now, charge=charge):
            assert ended.car == car
            assert (ended.unit, ended.attempt) not in self.ended
            self.ended.add((ended.unit, ended.attempt))
            if charge:
                self.failed.add((car, ended.unit))

    @rule()
    def expire(self) -> None:
        for ended in self.ledger.expire(self.now):
            assert (ended.unit, ended.attempt) not in self.ended
            self.ended.add((ended.unit, ended.attempt))
            self.failed.add((ended.car, ended.unit))

    @rule(seconds=st.integers(1, 12))
    def tick(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    # -- invariants ---------------------------------------------------------------------------
    @invariant()
    def consistent(self) -> None:
        assert self.ledger.verify() == []

    @invariant()
    def commits_never_change(self) -> None:
        results = self.ledger.results(JOB)
        assert {r.unit: r.commit_id for r in results} == self.commits
        summary = self.ledger.summary(JOB)
        assert summary.pending + summary.running + summary.succeeded + summary.failed == summary.total
        assert (
            summary.succeeded == len(results) == intervals.count(intervals.parse(summary.completed_intervals))
        )

    @invariant()
    def live_attempts_spread(self) -> None:
        live = self.ledger.live(JOB)
        assert all((a.unit, a.attempt) not in self.ended for a in live)
        seats = [(a.unit, owner(a.car) if self.distinct else a.car) for a in live]
        assert len(seats) == len(set(seats)), f"two live attempts of one unit share a car or owner: {live}"
        assert {a.car for a in live} == self.ledger.summary(JOB).cars_in_use


LedgerMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestLedgerMachine = LedgerMachine.TestCase
