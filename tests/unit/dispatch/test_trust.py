"""Trust nothing a car says: verdicts, adaptive replication, probes, quarantine and credit in
the ledger. Each test drives a real file-backed ledger through one story; the fixture checks
the ledger's invariants afterwards. Times are seconds after T0.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from curbside_operator.dispatch.ledger import (
    Commit,
    Fenced,
    Lease,
    Quarantined,
    Revoked,
    Validation,
    commit_id,
)
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from curbside_operator.dispatch.sqlite_schema import MIGRATIONS, SCHEMA
from curbside_operator.facts import CarFacts, Standing
from tests.support.ledger import JOB, T0, at


def add(
    ledger: SqliteLedger,
    *,
    units: int = 10,
    replicas: int = 2,
    quorum: int = 2,
    adaptive: bool = False,
    trust_after: int = 10,
    spot_percent: int = 5,
    probe_percent: int = 0,
    quarantine_after: int = 2,
) -> None:
    validation = Validation("seti:1", adaptive, trust_after, spot_percent, probe_percent, quarantine_after)
    ledger.add_job(
        JOB,
        units=units,
        unit_timeout=timedelta(seconds=100),
        max_attempts=3,
        replicas=replicas,
        quorum=quorum,
        validation=validation,
    )


def run(
    ledger: SqliteLedger,
    car: str,
    out: str,
    *,
    t: float = 0,
    took: float = 10,
    owner: str | None = None,
    hardware: str = "",
    speed: float = 1.0,
    watts: float = 0.0,
) -> tuple[Lease, Commit]:
    """``car`` leases a unit at ``t`` and submits ``out`` ``took`` seconds later."""
    facts = CarFacts(owner=owner or car, hardware=hardware, speed=speed, watts=watts)
    lease = ledger.lease(JOB, car=car, owner=facts.owner, now=at(t), facts=facts)
    assert lease is not None, f"{car} got no unit"
    done = ledger.complete(
        JOB, lease.unit, lease.attempt, car=car, output_hash=out, result_ref=f"r-{car}", now=at(t + took)
    )
    return lease, done


def standing(ledger: SqliteLedger, car: str) -> Standing:
    return {s.car: s for s in ledger.standings()[1]}[car]


def test_agreeing_replicas_are_valid_and_share_the_median_credit(ledger: SqliteLedger) -> None:
    add(ledger)
    run(ledger, "a", "h", took=10, speed=2.0, watts=30.0)
    _, done = run(ledger, "b", "h", took=30, speed=1.0)
    assert done.committed
    assert done.commit_id == commit_id(JOB, 0, "h")
    a, b = standing(ledger, "a"), standing(ledger, "b")
    assert (a.valid, b.valid, a.invalid) == (1, 1, 0)
    assert a.credit_seconds == b.credit_seconds == 25.0  # median of 10 s x 2 and 30 s x 1
    assert a.energy_joules == 300.0
    assert b.energy_joules == 0.0
    s = ledger.summary(JOB)
    assert (s.succeeded, s.results, s.verified, s.overhead) == (1, 2, 1, 1.0)


def test_the_outvoted_result_is_invalid_and_a_second_one_quarantines_its_car(ledger: SqliteLedger) -> None:
    add(ledger)
    run(ledger, "bad", "forged")
    _, first = run(ledger, "b", "h")
    assert not first.committed  # one against one: a third car decides
    _, third = run(ledger, "c", "h")
    assert third.committed
    assert ledger.results(JOB)[0].output_hash == "h"
    assert standing(ledger, "bad").invalid == 1
    assert standing(ledger, "bad").quarantine is None
    assert standing(ledger, "b").credit_seconds == 10.0
    assert standing(ledger, "bad").credit_seconds == 0
    held = ledger.lease(JOB, car="bad", owner="bad", now=at(50))  # unit 1, held while it is caught
    assert held is not None
    run(ledger, "bad", "forged-again", t=51)
    run(ledger, "d", "h1", t=52)
    run(ledger, "e", "h1", t=53)
    assert standing(ledger, "bad").quarantine == "2 results outvoted by other cars"
    with pytest.raises(Quarantined, match="outvoted"):
        ledger.lease(JOB, car="bad", owner="bad", now=at(60))
    with pytest.raises(Fenced):  # its other work was fenced in the same transaction
        ledger.renew(JOB, held.unit, held.attempt, car="bad", now=at(60))


def test_a_quarantined_cars_waiting_votes_no_longer_count(ledger: SqliteLedger) -> None:
    add(ledger)
    run(ledger, "bad", "x")  # unit 0 waits for a second result
    assert ledger.quarantine("bad", reason="caught elsewhere", now=at(20))
    assert not ledger.quarantine("bad", reason="again", now=at(21))
    _, done = run(ledger, "b", "x", t=30)  # agreeing with the quarantined car is not a quorum
    assert not done.committed
    _, done = run(ledger, "c", "x", t=31)
    assert done.committed


def test_a_trusted_car_runs_units_alone_and_loses_them_when_caught(ledger: SqliteLedger) -> None:
    add(ledger, units=20, adaptive=True, trust_after=2, spot_percent=0)
    for t in (0, 100):  # two verified units in a row make "t" trusted on seti:1
        run(ledger, "t", f"h{t}", t=t)
        run(ledger, "peer", f"h{t}", t=t)
    assert standing(ledger, "t").trusted == ("seti:1",)
    lease, done = run(ledger, "t", "alone", t=200)
    assert done.committed
    assert lease.unit == 2
    before = ledger.summary(JOB)
    assert (before.succeeded, before.verified, before.overhead) == (3, 2, 2 / 3)  # 5 results, 3 units
    credit = standing(ledger, "t").credit_seconds
    assert credit == 30.0  # 10 s verified twice, plus 10 s on trust
    ledger.quarantine("t", reason="test", now=at(300))
    after = ledger.summary(JOB)
    assert (after.succeeded, after.pending) == (2, before.pending + 1)  # unit 2 runs again
    assert standing(ledger, "t").credit_seconds == 20.0
    _, again = run(ledger, "peer", "h2", t=400)
    assert not again.committed  # reopened with full replication
    assert ledger.revoked() == [Revoked(JOB, 2, "alone")]  # its file must leave the output
    _, again = run(ledger, "other", "h2", t=401)
    assert again.committed
    assert {r.unit: r.output_hash for r in ledger.results(JOB)}[2] == "h2"
    assert ledger.revoked() == []  # committed again: the new result replaces the file


def test_revoked_results_are_listed_until_the_output_no_longer_holds_them(ledger: SqliteLedger) -> None:
    add(ledger, units=20, adaptive=True, trust_after=1, spot_percent=0)
    run(ledger, "t", "h0")
    run(ledger, "peer", "h0")
    run(ledger, "t", "forged", t=10)
    assert ledger.revoked() == []
    ledger.quarantine("t", reason="test", now=at(20))
    gone = ledger.revoked()
    assert gone == [Revoked(JOB, 1, "forged")]
    ledger.unpublished(gone)
    assert ledger.revoked() == []


def test_spot_checked_units_stay_replicated_for_trusted_cars(ledger: SqliteLedger) -> None:
    add(ledger, units=50, adaptive=True, trust_after=1, spot_percent=100)
    run(ledger, "t", "h")
    run(ledger, "p", "h")
    _, done = run(ledger, "t", "next", t=10)
    assert not done.committed  # every unit is a spot check at 100 %


def test_one_invalid_result_resets_the_streak_and_the_trust(ledger: SqliteLedger) -> None:
    add(ledger, adaptive=True, trust_after=1, spot_percent=0, quarantine_after=5)
    run(ledger, "t", "h")
    run(ledger, "p", "h")
    assert standing(ledger, "t").trusted
    # unit 1: t is trusted, so it runs alone ... but first a peer-led unit where t is outvoted
    run(ledger, "p", "h1", t=10)
    run(ledger, "q", "h1", t=10)
    lease = ledger.lease(JOB, car="x", owner="x", now=at(20))  # x opens unit 2 (untrusted: 2 replicas)
    assert lease is not None
    ledger.complete(JOB, lease.unit, lease.attempt, car="x", output_hash="g", result_ref="r", now=at(21))
    run(ledger, "t", "wrong", t=22)
    run(ledger, "y", "g", t=23)
    assert standing(ledger, "t").streak == 0
    assert standing(ledger, "t").trusted == ()


def test_replicas_never_go_to_two_cars_of_one_owner_even_after_a_rejection(ledger: SqliteLedger) -> None:
    add(ledger, units=1, replicas=2, quorum=2)
    run(ledger, "a1", "x", owner="o1")
    run(ledger, "b1", "y", owner="o2")
    assert ledger.lease(JOB, car="a2", owner="o1", now=at(20), facts=CarFacts(owner="o1")) is None
    assert ledger.lease(JOB, car="b2", owner="o2", now=at(20), facts=CarFacts(owner="o2")) is None
    assert ledger.lease(JOB, car="c1", owner="o3", now=at(20), facts=CarFacts(owner="o3")) is not None


def test_replicas_stay_within_the_first_cars_hardware_class(ledger: SqliteLedger) -> None:
    add(ledger, units=1)
    run(ledger, "a", "x", hardware="orin")
    assert (
        ledger.lease(JOB, car="b", owner="b", now=at(20), facts=CarFacts(owner="b", hardware="fsd")) is None
    )
    _, done = run(ledger, "c", "x", t=21, hardware="orin")
    assert done.committed


def test_the_summary_names_the_hardware_classes_the_open_work_needs(ledger: SqliteLedger) -> None:
    add(ledger, units=2)
    assert ledger.summary(JOB).open_hardware is None  # fresh units: any car may start one
    run(ledger, "a", "x", hardware="orin")
    assert ledger.summary(JOB).open_hardware is None
    run(ledger, "b", "y", t=1, hardware="fsd")  # both units started: each wants its own class
    assert ledger.summary(JOB).open_hardware == {"orin", "fsd"}
    run(ledger, "c", "x", t=2, hardware="orin")
    assert ledger.summary(JOB).open_hardware == {"fsd"}
    second = ledger.lease(JOB, car="d", owner="d", now=at(3), facts=CarFacts(owner="d", hardware="fsd"))
    assert second is not None
    assert ledger.summary(JOB).open_hardware == frozenset()  # all leased: nothing open


def test_outputs_equal_within_tolerance_count_as_the_first_one(ledger: SqliteLedger) -> None:
    add(ledger, units=1)
    lease, _ = run(ledger, "a", "first")
    second = ledger.lease(JOB, car="b", owner="b", now=at(1))
    assert second is not None
    assert ledger.candidates(JOB, second.unit, second.attempt) == ["first"]
    done = ledger.complete(
        JOB, 0, second.attempt, car="b", output_hash="close", result_ref="r", now=at(2), matches="first"
    )
    assert (done.committed, done.output_hash) == (True, "first")
    assert done.commit_id == commit_id(JOB, 0, "first")
    result = ledger.results(JOB)[0]
    assert (result.output_hash, result.result_ref) == ("first", "r-a")
    assert lease.unit == 0


def test_a_claimed_match_with_nothing_submitted_counts_as_its_own_output(ledger: SqliteLedger) -> None:
    add(ledger, units=1)
    lease = ledger.lease(JOB, car="a", owner="a", now=T0)
    assert lease is not None
    done = ledger.complete(
        JOB, 0, 1, car="a", output_hash="mine", result_ref="r", now=at(1), matches="made-up"
    )
    assert done.output_hash == "mine"
    assert not done.committed


def test_a_probe_reruns_a_verified_unit_and_a_wrong_answer_quarantines(ledger: SqliteLedger) -> None:
    add(ledger, units=3, probe_percent=100)
    run(ledger, "a", "h0")
    run(ledger, "b", "h0")  # unit 0 is verified: now every lease of a stranger is a probe of it
    probe = ledger.lease(JOB, car="c", owner="c", now=at(20))
    assert probe is not None
    assert probe.unit == 0
    assert ledger.candidates(JOB, 0, probe.attempt) == ["h0"]
    done = ledger.complete(JOB, 0, probe.attempt, car="c", output_hash="h0", result_ref="r", now=at(25))
    assert not done.committed  # a probe looks like a result waiting for its quorum
    assert standing(ledger, "c").valid == 1
    assert standing(ledger, "c").credit_seconds == 5.0
    liar = ledger.lease(JOB, car="d", owner="d", now=at(30))
    assert liar is not None
    assert liar.unit == 0
    ledger.complete(JOB, 0, liar.attempt, car="d", output_hash="forged", result_ref="r", now=at(31))
    assert standing(ledger, "d").quarantine == "missed the known answer of a check unit (unit 0)"
    assert ledger.summary(JOB).succeeded == 1  # probes never change the unit they check


def test_standings_report_only_cars_that_changed(ledger: SqliteLedger) -> None:
    add(ledger)
    run(ledger, "a", "h")
    run(ledger, "b", "h")
    seq, cars = ledger.standings()
    assert {s.car for s in cars} == {"a", "b"}
    assert ledger.standings(seq) == (seq, [])
    ledger.quarantine("a", reason="r", now=at(5))
    seq2, cars = ledger.standings(seq)
    assert seq2 > seq
    assert [s.car for s in cars] == ["a"]


def test_a_schema_1_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA + ";PRAGMA user_version = 1;")
    db.execute(
        "INSERT INTO jobs (key, units, timeout_us, max_attempts, replicas, quorum, distinct_owners, pending)"
        " VALUES (?, 2, 60000000, 3, 1, 1, 1, 2)",
        (JOB,),
    )
    db.commit()
    db.close()
    ledger = SqliteLedger(path, durable=False)
    lease = ledger.lease(JOB, car="a", owner="a", now=T0)
    assert lease is not None
    assert ledger.complete(JOB, 0, 1, car="a", output_hash="h", result_ref="r", now=at(1)).committed
    assert ledger.verify() == []
    ledger.close()


def test_a_unit_run_once_may_move_to_any_hardware(ledger: SqliteLedger) -> None:
    add(ledger, units=2, replicas=1, quorum=1)
    first = ledger.lease(JOB, car="a", owner="a", now=T0, facts=CarFacts(owner="a", hardware="orin"))
    assert first is not None
    ledger.fence_car(JOB, "a", now=at(1))
    other = ledger.lease(JOB, car="b", owner="b", now=at(2), facts=CarFacts(owner="b", hardware="fsd"))
    assert other is not None
    assert (other.unit, other.attempt) == (first.unit, 2)


def test_a_schema_2_ledger_keeps_one_charge_per_car_and_gets_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA + ";" + ";".join(MIGRATIONS[2]) + ";PRAGMA user_version = 2;")
    db.execute(
        "INSERT INTO jobs (key, units, timeout_us, max_attempts, replicas, quorum, distinct_owners, pending,"
        " cursor, issued, reruns) VALUES (?, 2, 60000000, 5, 1, 1, 1, 2, 1, 3, 3)",
        (JOB,),
    )
    db.execute(
        "INSERT INTO units (job, unit, state, epoch, failures, open_slots) VALUES (1, 0, 'pending', 3, 3, 1)"
    )
    for attempt, car, status in ((1, "a", "failed"), (2, "a", "failed"), (3, "b", "expired")):
        db.execute(
            "INSERT INTO attempts (job, unit, attempt, car, owner, status, deadline_us)"
            " VALUES (1, 0, ?, ?, ?, ?, 0)",
            (attempt, car, car, status),
        )
    db.commit()
    db.close()
    ledger = SqliteLedger(path, durable=False)
    assert ledger.verify() == []  # a's two failures count once
    lease = ledger.lease(JOB, car="a", owner="a", now=T0)
    assert lease is not None
    assert lease.unit == 1  # never unit 0 again
    assert ledger.lease(JOB, car="c", owner="c", now=T0) == Lease(0, 4, at(60))
    ledger.close()
