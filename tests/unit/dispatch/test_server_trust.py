"""The dispatcher's part in trusting nothing a car says: results compared within the job's
tolerance, the owner taken from the operator's view (not the request), quarantined cars refused."""

from __future__ import annotations

from pathlib import Path

from curbside_operator.facts import CarFacts
from tests.support.dispatcher import Client, TrustHarness


def test_results_within_tolerance_agree_and_the_first_one_is_published(tmp_path: Path) -> None:
    h = TrustHarness(tmp_path)
    h.fleet.update(a=CarFacts(owner="alice"), b=CarFacts(owner="bob"))
    first, close = {"snr": [12.5, 3.0]}, {"snr": [12.505, 3.001]}

    async def scenario(client: Client) -> None:
        status, answer = await h.finish(client, "a", first)
        assert (status, answer["committed"]) == (200, False)
        status, answer = await h.finish(client, "b", close)
        assert (status, answer["committed"]) == (200, True)
        assert h.store.read("demo", "trust", 0) == {"unit": 0, **first}

    h.run(scenario)


def test_the_owner_comes_from_the_fleet_not_from_the_car(tmp_path: Path) -> None:
    h = TrustHarness(tmp_path)
    h.fleet.update(a=CarFacts(owner="alice"), a2=CarFacts(owner="alice"))

    async def scenario(client: Client) -> None:
        await h.finish(client, "a", {"x": 1})
        status, _ = await h.call(client, "/lease", {"car": "a2", "owner": "someone-else"})
        assert status == 200  # unit 1: unit 0 already has a result from alice's cars
        status, answer = await h.call(client, "/lease", {"car": "stranger", "owner": "bob"})
        assert status == 503  # not refused for good: the operator's fleet view may be filling
        assert "not among the VehicleNodes" in answer["message"]

    h.run(scenario)


def test_an_outvoted_car_is_quarantined_and_refused(tmp_path: Path) -> None:
    h = TrustHarness(tmp_path)
    h.fleet.update(bad=CarFacts(owner="o1"), b=CarFacts(owner="o2"), c=CarFacts(owner="o3"))

    async def scenario(client: Client) -> None:
        await h.finish(client, "bad", {"x": 99})
        await h.finish(client, "b", {"x": 1})
        status, answer = await h.finish(client, "c", {"x": 1.001})
        assert (status, answer["committed"]) == (200, True)
        status, answer = await h.call(client, "/lease", {"car": "bad", "owner": "o1"})
        assert (status, answer["error"]) == (403, "Quarantined")

    h.run(scenario)


def test_a_result_naming_another_unit_quarantines_its_car_before_replays_can_agree(tmp_path: Path) -> None:
    """Two cars of one replaying cheat that shared their first unit would send identical bytes
    for every later unit they share: identical results form a quorum unless the unit is
    checked. The first replay quarantines its car; the unit is decided by honest cars."""
    h = TrustHarness(tmp_path)
    h.fleet.update(**{car: CarFacts(owner=f"owner-{car}") for car in ("r1", "r2", "c", "d")})
    first = {"unit": 0, "x": 1}

    async def scenario(client: Client) -> None:
        for car in ("r1", "r2"):  # both replicas of unit 0, honestly
            status, answer = await h.finish(client, car, first)
            assert status == 200, answer
        assert answer["committed"]
        for car in ("r1", "r2"):  # unit 1: each sends unit 0's result again
            status, answer = await h.finish(client, car, first)
            assert (status, answer["error"]) == (403, "Quarantined"), answer
            assert "sent unit 0's result as unit 1's" in answer["message"]
        assert not h.store.published("demo", "trust", 1)
        status, answer = await h.call(client, "/lease", {"car": "r1", "owner": "x"})
        assert (status, answer["error"]) == (403, "Quarantined")
        for car in ("c", "d"):
            status, answer = await h.finish(client, car, {"x": 2})
            assert status == 200, answer
        assert answer["committed"]
        assert h.store.read("demo", "trust", 1) == {"unit": 1, "x": 2}
        quarantined = {s.car for s in h.ledger.standings()[1] if s.quarantine}
        assert quarantined == {"r1", "r2"}

    h.run(scenario)
