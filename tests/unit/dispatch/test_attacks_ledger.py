"""Attacks a hostile car can make through the dispatcher's HTTP API alone, and the ledger's
answer to each (``sqlite_limits``; the rules are in ``docs/dispatch.md``, Limits).

Each test is the attack as a car performs it, over real HTTP against the real dispatcher on a
file ledger (``tests.support.dispatcher.Harness``), and fails if the ledger's protection is
taken away: one car failing a whole job by releasing its units with errors; one car keeping a
unit forever by renewing it; a trusted car forging exactly the units it can tell will not be
spot-checked, from the job key its pod's owner reference shows; and a quarantined car's
results staying in the published output after the ledger revoked them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from curbside_operator.dispatch import results
from curbside_operator.dispatch import sqlite_limits as limits
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from tests.support.dispatcher import Client, Harness, spec
from tests.support.ledger import JOB, T0

TIMEOUT = 30


class Attack(Harness):
    """The harness with one more job, ``demo/<name>``, of the spec the attack needs."""

    def __init__(self, tmp_path: Path, name: str, *, units: int, **overrides: Any) -> None:
        super().__init__(tmp_path)
        self.name = name
        generated = {"seed": 7, "units": units, "itemsPerUnit": 1, "parameters": {}}
        body = {"input": {"generated": generated}, "unitTimeoutSeconds": TIMEOUT, **overrides}
        self.spec = spec(**body)
        self.key = self.dispatcher.register_job("demo", name, f"uid-{name}", self.spec)

    async def call(self, client: Client, car: str, path: str, **body: Any) -> tuple[int, Any]:
        response = await client.post(
            f"/v1/jobs/demo/{self.name}{path}",
            data=json.dumps({"car": car, **body}),
            headers=self.auth(car, job=self.name),
        )
        return response.status, (await response.json() if response.status != 204 else None)

    async def lease(self, client: Client, car: str) -> dict[str, Any] | None:
        status, answer = await self.call(client, car, "/lease", owner=f"owner-{car}")
        assert status in (200, 204), answer
        return answer if status == 200 else None

    async def complete(self, client: Client, car: str, lease: dict[str, Any], value: int) -> dict[str, Any]:
        result = {"unit": lease["unit"], "value": value}
        status, answer = await self.call(
            client,
            car,
            f"/units/{lease['unit']}/complete",
            attempt=lease["attempt"],
            outputHash=results.output_hash(result),
            result=result,
        )
        assert status == 200, answer
        return dict(answer)

    async def work(self, client: Client, cars: list[str]) -> None:
        """Honest cars compute (``value`` = the unit's number) until none of them gets a unit."""
        busy = True
        while busy:
            busy = False
            for car in cars:
                lease = await self.lease(client, car)
                if lease is not None:
                    await self.complete(client, car, lease, lease["unit"])
                    busy = True


# -- 1. one car fails a whole job --------------------------------------------------------------
def test_one_car_releasing_with_errors_cannot_fail_a_unit_let_alone_the_job(tmp_path: Path) -> None:
    h = Attack(tmp_path, "burn", units=4, maxAttempts=3)

    async def scenario(client: Client) -> None:
        for _ in range(12):  # the reviewed attack: lease, release with an error, repeat
            lease = await h.lease(client, "mallory")
            if lease is None:
                continue
            path = f"/units/{lease['unit']}/release"
            status, answer = await h.call(client, "mallory", path, attempt=lease["attempt"], error="boom")
            assert (status, answer) == (200, {"released": True})
            assert (
                h.ledger.summary(h.key).failed == 0
            ), f"one car failed unit {lease['unit']} on its own, with {lease['attempt']} attempts"
        await h.work(client, ["alice", "bob"])
        summary = h.ledger.summary(h.key)
        assert (summary.succeeded, summary.failed) == (4, 0)

    h.run(scenario)


def test_a_car_failing_units_in_a_row_is_benched_from_the_job_for_a_while(tmp_path: Path) -> None:
    h = Attack(tmp_path, "bench", units=6, maxAttempts=3)

    async def fail(client: Client, car: str) -> int | None:
        lease = await h.lease(client, car)
        if lease is None:
            return None
        path = f"/units/{lease['unit']}/release"
        status, _ = await h.call(client, car, path, attempt=lease["attempt"], error="boom")
        assert status == 200
        return int(lease["unit"])

    async def scenario(client: Client) -> None:
        failed = [await fail(client, "mallory") for _ in range(limits.FAIL_STREAK)]
        assert failed == [0, 1, 2]  # a unit it failed is never handed to it again
        assert (
            await h.lease(client, "mallory") is None
        ), f"a car that failed {limits.FAIL_STREAK} units in a row still gets units of the job"
        assert (await h.lease(client, "alice") or {}).get("unit") == 0  # others still work
        h.now += timedelta(seconds=limits.BENCH_TIMEOUTS * TIMEOUT)
        lease = await h.lease(client, "mallory")
        assert lease is not None
        assert lease["unit"] == 3  # back after its bench, on units it never failed only

    h.run(scenario)


def test_a_result_ends_a_cars_failures_in_a_row(ledger: SqliteLedger) -> None:
    ledger.add_job(JOB, units=9, unit_timeout=timedelta(seconds=TIMEOUT), max_attempts=3)
    for fails in (limits.FAIL_STREAK - 1, 0, limits.FAIL_STREAK - 1):  # never 3 in a row
        for _ in range(fails):
            lease = ledger.lease(JOB, car="a", owner="a", now=T0)
            assert lease is not None
            ledger.release(JOB, lease.unit, lease.attempt, car="a", now=T0, error="x")
        lease = ledger.lease(JOB, car="a", owner="a", now=T0)
        assert lease is not None, "benched although a result broke the streak"
        ledger.complete(JOB, lease.unit, lease.attempt, car="a", output_hash="h", result_ref="r", now=T0)


def test_a_unit_fails_only_when_distinct_cars_failed_it_max_attempts_times(tmp_path: Path) -> None:
    h = Attack(tmp_path, "distinct", units=1, maxAttempts=3)

    async def scenario(client: Client) -> None:
        for number, car in enumerate(["a", "b", "c"], start=1):
            assert h.ledger.summary(h.key).failed == 0
            lease = await h.lease(client, car)
            assert lease is not None
            assert (lease["unit"], lease["attempt"]) == (0, number)
            path = "/units/0/release"
            await h.call(client, car, path, attempt=lease["attempt"], error="model crashed")
        assert h.ledger.summary(h.key).failed == 1

    h.run(scenario)


# -- 2. renewing forever -----------------------------------------------------------------------
def test_renewing_cannot_keep_a_unit_past_its_maximum_lifetime(tmp_path: Path) -> None:
    h = Attack(tmp_path, "hold", units=1)
    longest = timedelta(seconds=limits.MAX_LEASE_TIMEOUTS * TIMEOUT)

    async def scenario(client: Client) -> None:
        lease = await h.lease(client, "mallory")
        assert lease is not None
        leased_at, deadlines = h.now, [lease["deadline"]]
        for _ in range(2000):  # the reviewed attack: renew at a third of the timeout, forever
            h.now += timedelta(seconds=TIMEOUT / 3)
            status, answer = await h.call(client, "mallory", "/units/0/renew", attempt=lease["attempt"])
            if status != 200:
                break
            deadlines.append(answer["deadline"])
        held = h.now - leased_at
        assert status == 409, f"mallory still held unit 0 after {held} and {len(deadlines) - 1} renewals"
        assert max(deadlines) == (leased_at + longest).isoformat().replace("+00:00", "Z")
        assert (answer["error"], answer["message"]) == ("Fenced", "attempt expired: its deadline passed")
        assert held <= longest
        other = await h.lease(client, "alice")
        assert other is not None
        assert (other["unit"], other["attempt"]) == (0, 2)  # the unit went back to others
        assert await h.lease(client, "mallory") is None  # and never to the car that timed out on it

    h.run(scenario)


# -- 3. predicting the spot checks -------------------------------------------------------------
def _old_spot_draw(job: str, unit: int) -> int:
    """The spot-check choice as it once was: a hash of what the car can read off its own pod."""
    digest = hashlib.sha256(f"{job}\nspot\n{unit}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100


def test_a_trusted_car_cannot_forge_only_the_units_it_predicts_are_unchecked(tmp_path: Path) -> None:
    units, percent = 60, 25  # few enough checks that the car's staged results fit its quota
    redundancy = {
        "replicas": 2,
        "quorum": 2,
        "adaptive": True,
        "trustAfter": 1,
        "spotCheckPercent": percent,
        "probePercent": 0,
        "quarantineAfter": 1,
    }
    h = Attack(tmp_path, "forge", units=units, redundancy=redundancy)

    async def scenario(client: Client) -> None:
        for car in ("mallory", "peer"):  # unit 0, verified: mallory is now trusted
            lease = await h.lease(client, car)
            assert lease is not None
            await h.complete(client, car, lease, 0)
        forged, unnoticed = 0, 0
        while (lease := await h.lease(client, "mallory")) is not None:
            unit = lease["unit"]
            if _old_spot_draw(h.key, unit) < percent:  # predicted to be checked: play it straight
                await h.complete(client, "mallory", lease, unit)
                continue
            forged += 1
            answer = await h.complete(client, "mallory", lease, -1)
            unnoticed += answer["committed"]
        assert forged > 30
        await h.work(client, ["peer", "p2", "p3", "p4"])
        status, answer = await h.call(client, "mallory", "/lease", owner="owner-mallory")
        never = f"mallory forged {forged} units it predicted unchecked ({unnoticed} committed), never caught"
        assert status == 403, never
        assert answer["error"] == "Quarantined"
        committed = {r.unit: r.output_hash for r in h.ledger.results(h.key)}
        honest = {u: results.output_hash({"unit": u, "value": u}) for u in range(units)}
        assert committed == honest  # every forgery was found and redone

    h.run(scenario)


def _draw_secret(ledger: SqliteLedger) -> str:
    (value,) = ledger._db.execute("SELECT value FROM secrets WHERE name = 'draw'").fetchone()
    return str(value)


def test_the_draw_secret_is_per_ledger_kept_across_restarts_and_hides_the_choice(tmp_path: Path) -> None:
    first, second = SqliteLedger(tmp_path / "a.db"), SqliteLedger(tmp_path / "b.db")
    keys = [_draw_secret(first), _draw_secret(second)]
    first.close()
    second.close()
    again = SqliteLedger(tmp_path / "a.db")
    assert _draw_secret(again) == keys[0]  # the choices do not move when the operator restarts
    assert again.verify() == []
    again.close()
    assert keys[0] != keys[1]
    spots = [[limits.draw(key, JOB, "spot", unit) < 5 for unit in range(2000)] for key in keys]
    predicted = [_old_spot_draw(JOB, unit) < 5 for unit in range(2000)]
    assert spots[0] != spots[1]  # two ledgers check different units of the same job
    assert spots[0] != predicted
    assert spots[1] != predicted
    assert 50 <= sum(spots[0]) <= 150  # still about 5 %


# -- 4. a revoked result stays published -------------------------------------------------------
@pytest.mark.parametrize("caught_by", ["outvoted", "replaying"])
def test_a_quarantined_cars_results_leave_the_published_output(tmp_path: Path, caught_by: str) -> None:
    redundancy = {"replicas": 2, "quorum": 2, "trustAfter": 1, "spotCheckPercent": 0, "quarantineAfter": 1}
    h = Attack(tmp_path, "revoke", units=4, redundancy=redundancy)

    async def scenario(client: Client) -> None:
        for car in ("mallory", "peer"):  # unit 0, verified: mallory is now trusted
            lease = await h.lease(client, car)
            assert lease is not None
            await h.complete(client, car, lease, 0)
        lease = await h.lease(client, "mallory")
        assert lease is not None
        assert (await h.complete(client, "mallory", lease, -1))["committed"]  # alone, on trust
        assert h.store.read("demo", "revoke", 1) == {"unit": 1, "value": -1}
        if caught_by == "outvoted":  # a replicated unit where mallory's forgery loses the vote
            for car, value in (("p2", 2), ("mallory", -1), ("p3", 2)):
                lease = await h.lease(client, car)
                assert lease is not None
                assert lease["unit"] == 2
                await h.complete(client, car, lease, value)
        else:  # an old result sent again for another unit
            lease = await h.lease(client, "mallory")
            assert lease is not None
            result = {"unit": 1, "value": -1}
            status, answer = await h.call(
                client,
                "mallory",
                f"/units/{lease['unit']}/complete",
                attempt=lease["attempt"],
                outputHash=results.output_hash(result),
                result=result,
            )
            assert (status, answer["error"]) == (403, "Quarantined")
        assert not h.store.published("demo", "revoke", 1), "the quarantined car's forgery is still published"
        assert h.ledger.revoked() == []
        await h.work(client, ["peer", "p2", "p3", "p4"])
        assert [h.store.read("demo", "revoke", unit)["value"] for unit in range(4)] == [0, 1, 2, 3]

    h.run(scenario)


def test_a_revoked_result_a_crash_left_published_is_removed_when_the_job_is_registered(
    tmp_path: Path,
) -> None:
    redundancy = {"replicas": 2, "quorum": 2, "trustAfter": 1, "spotCheckPercent": 0}
    h = Attack(tmp_path, "crash", units=3, redundancy=redundancy)

    async def scenario(client: Client) -> None:
        for car, value in (("mallory", 0), ("peer", 0), ("mallory", -1)):
            lease = await h.lease(client, car)
            assert lease is not None
            await h.complete(client, car, lease, value)
        assert h.ledger.quarantine("mallory", reason="caught", now=h.now)  # the dispatcher dies here
        assert h.store.published("demo", "crash", 1)
        h.dispatcher.register_job("demo", "crash", "uid-crash", h.spec)  # the operator starts again
        assert not h.store.published("demo", "crash", 1)
        assert h.ledger.revoked() == []

    h.run(scenario)
