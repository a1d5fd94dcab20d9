"""Enrollment: valid, varied, deterministic VehicleNodes; hardware from the Node; the runner's flags."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from curbside_agent import policy
from curbside_api.v1alpha1 import vehiclenode
from curbside_sim import enroll, runner
from curbside_testbed import fleet as testbed_fleet


def test_bodies_are_valid_deterministic_and_named_like_the_car() -> None:
    facts = enroll.NodeFacts()
    first = [enroll.vehiclenode_body(7, i, node=facts, zone="UTC") for i in range(200)]
    assert first == [enroll.vehiclenode_body(7, i, node=facts, zone="UTC") for i in range(200)]
    assert first != [enroll.vehiclenode_body(8, i, node=facts, zone="UTC") for i in range(200)]
    assert first[42]["metadata"]["name"] == "car-00042"
    models = [vehiclenode.VehicleNode.from_body(body) for body in first]
    assert len({m.spec.vehicle.vin for m in models}) == 200
    assert len({m.spec.vehicle.owner for m in models}) < 200  # some owners have several cars
    for model in models:
        policy.from_spec(model.spec.policy)  # every policy is usable by the rule book


def test_policies_vary_like_owners_do() -> None:
    specs = [enroll.owner_policy(1, i, zone="UTC") for i in range(1000)]
    starts = Counter(spec["minBatteryPercent"] for spec in specs)
    assert set(starts) == {40, 50, 60, 70}
    assert 0.15 < sum(spec["requireCharging"] for spec in specs) / 1000 < 0.35
    assert 0.2 < sum("timeWindows" in spec for spec in specs) / 1000 < 0.4
    assert 0.2 < sum("maxEnergyKwhPerDay" in spec for spec in specs) / 1000 < 0.4


def test_hardware_and_region_come_from_the_node() -> None:
    node = testbed_fleet.car_node(2)  # the test bed's third car: an hw5
    facts = enroll.NodeFacts.from_node(node)
    assert facts == enroll.NodeFacts(accelerator="hw5", tops=500, memory_gib=32, region="us-east")
    body = enroll.vehiclenode_body(1, 2, node=facts, zone="UTC")
    assert body["spec"]["hardware"] == {"accelerator": "hw5", "tops": 500, "memoryGiB": 32}
    assert enroll.NodeFacts.from_node({}) == enroll.NodeFacts()


@pytest.mark.parametrize(
    ("offset", "zone"),
    [(timedelta(0), "UTC"), (timedelta(hours=2), "Etc/GMT-2"), (timedelta(hours=-5), "Etc/GMT+5")],
    ids=["utc", "east", "west"],
)
def test_policy_time_zone_follows_the_simulated_clock(offset: timedelta, zone: str) -> None:
    start = datetime(2025, 3, 3, 6, tzinfo=timezone(offset))
    assert enroll.time_zone(start) == zone
    rules = policy.from_spec(vehiclenode.OwnerPolicy(time_zone=zone))
    assert rules.tz.utcoffset(start) == offset


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("3d", timedelta(days=3)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45", timedelta(seconds=45)),
    ],
)
def test_durations(text: str, want: timedelta) -> None:
    assert runner.duration(text) == want


def test_bad_flags_exit_2_and_name_the_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--duration", "soon"]) == 2
    assert "'soon': use a number with s, m, h or d" in capsys.readouterr().err
    with pytest.raises(argparse.ArgumentTypeError, match="give a UTC offset"):
        runner.moment("2025-03-03T06:00:00")
    assert runner.moment("2025-03-03T06:00:00Z") == datetime(2025, 3, 3, 6, tzinfo=UTC)
