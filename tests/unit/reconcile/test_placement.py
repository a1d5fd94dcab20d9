"""Table tests for Curbside's scheduler: filters, scores, owner spread, priorities."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from curbside_api.v1alpha1 import inferencejob as ij
from curbside_operator.reconcile import placement

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)


def spec(**placement_overrides: Any) -> ij.InferenceJobSpec:
    body = yaml.safe_load((REPO / "examples" / "02-minimal-inferencejob.yaml").read_text())
    body["spec"].setdefault("placement", {}).update(placement_overrides)
    return ij.InferenceJob.from_body(body).spec


def car(name: str, **overrides: Any) -> placement.Candidate:
    base = placement.Candidate(
        name=name,
        owner=f"owner-{name}",
        accelerator="hw4",
        tops=144,
        region="eu-north",
        ready=True,
        eligible=True,
        charging=False,
        unmetered=False,
        battery_percent=80,
        departure=None,
        departure_confidence=0.0,
    )
    return dataclasses.replace(base, **overrides)


def demand(
    key: str = "ns/job",
    *,
    wanted: int = 10,
    priority: int = 0,
    s: ij.InferenceJobSpec | None = None,
    in_use: frozenset[str] = frozenset(),
    created: datetime = NOW,
    hardware: frozenset[str] | None = None,
) -> placement.Demand:
    return placement.Demand(key, s or spec(), priority, created, in_use, wanted, hardware)


@pytest.mark.parametrize(
    ("candidate", "job", "want"),
    [
        (car("a"), spec(), None),
        (car("a", ready=False), spec(), "NotReady"),
        (car("a", eligible=False), spec(), "NotEligible"),
        (car("a"), spec(accelerators=["hw5"]), "WrongAccelerator"),
        (car("a", region="us-east"), spec(regions=["eu-north", "eu-west"]), "WrongRegion"),
        (car("a"), spec(minTops=500), "TooSlow"),
        (car("a"), spec(eligibility={"requireCharging": True}), "NotCharging"),
        (car("a"), spec(eligibility={"requireUnmeteredNetwork": True}), "MeteredNetwork"),
        (car("a", battery_percent=40), spec(eligibility={"minBatteryPercent": 50}), "BatteryLow"),
        (car("a", departure=NOW + timedelta(minutes=5), departure_confidence=0.9), spec(), "DepartingSoon"),
        (car("a", departure=NOW + timedelta(minutes=30), departure_confidence=0.9), spec(), None),
        (
            car("a", departure=NOW + timedelta(minutes=30), departure_confidence=0.9),
            spec(eligibility={"minDepartureMinutes": 60}),
            "DepartingSoon",
        ),
    ],
    ids=[
        "eligible",
        "not-ready",
        "not-eligible",
        "accelerator",
        "region",
        "tops",
        "charging",
        "unmetered",
        "battery-override",
        "departing-in-5min",
        "departing-in-30min",
        "job-wants-an-hour",
    ],
)
def test_filters(candidate: placement.Candidate, job: ij.InferenceJobSpec, want: str | None) -> None:
    assert placement.reject_reason(candidate, job, now=NOW, expected_unit=timedelta(minutes=10)) == want


def test_long_idle_window_charging_and_unmetered_win() -> None:
    cars = [
        car("leaves-soon", departure=NOW + timedelta(hours=1), departure_confidence=1.0),
        car(
            "overnight-charging",
            departure=NOW + timedelta(hours=9),
            departure_confidence=1.0,
            charging=True,
            unmetered=True,
        ),
        car("overnight", departure=NOW + timedelta(hours=9), departure_confidence=1.0),
    ]
    got = placement.place([demand(wanted=3)], cars, busy={}, now=NOW)["ns/job"]
    assert got.cars == ("overnight-charging", "overnight", "leaves-soon")


def test_spreads_over_owners_before_doubling_up() -> None:
    cars = [car("a1", owner="A", charging=True), car("a2", owner="A", charging=True), car("b1", owner="B")]
    got = placement.place([demand(wanted=2)], cars, busy={}, now=NOW)["ns/job"]
    assert set(got.cars) == {"a1", "b1"}


def test_max_cars_and_cars_in_use_cap_new_placements() -> None:
    cars = [car(f"c{i}") for i in range(10)]
    job = spec(maxCars=4)
    got = placement.place([demand(wanted=10, s=job, in_use=frozenset({"c0", "c1"}))], cars, busy={}, now=NOW)
    assert len(got["ns/job"].cars) == 2
    assert not {"c0", "c1"} & set(got["ns/job"].cars)


def test_higher_priority_job_gets_the_cars_first() -> None:
    cars = [car("x"), car("y")]
    low = demand("ns/low", wanted=2, priority=0, created=NOW - timedelta(hours=1))
    high = demand("ns/high", wanted=2, priority=10)
    got = placement.place([low, high], cars, busy={}, now=NOW)
    assert set(got["ns/high"].cars) == {"x", "y"}
    assert got["ns/low"].cars == ()
    assert got["ns/low"].rejected == {"Busy": 2}


def test_busy_cars_are_skipped_and_explained() -> None:
    cars = [car("x"), car("y", eligible=False), car("z")]
    got = placement.place([demand(wanted=3)], cars, busy={"x": 1}, now=NOW)["ns/job"]
    assert got.cars == ("z",)
    assert got.explain(total=3) == "1/3 cars placed; passed over: 1 Busy, 1 NotEligible"


@pytest.mark.parametrize(
    ("job", "car_name"),
    [("seti", "car-00001"), ("a" * 60, "car-00001"), ("x" * 200, "car-99999")],
    ids=["short", "long-job", "absurd"],
)
def test_pod_names_are_deterministic_and_valid(job: str, car_name: str) -> None:
    name = placement.pod_name(job, car_name)
    assert name == placement.pod_name(job, car_name)
    assert len(name) <= placement.MAX_POD_NAME
    assert not name.endswith("-")
    assert placement.pod_name(job, car_name) != placement.pod_name(job, "car-00002")


def test_a_job_whose_open_work_wants_one_accelerator_gets_only_cars_of_that_class() -> None:
    # The faster hw5 cars rank first; but the job's last units were first run on hw4 cars, so
    # their second results must come from hw4 (a hw5 car would hold a pod and get no unit).
    cars = [car("fast", accelerator="hw5", tops=500), car("slow", accelerator="hw4")]
    got = placement.place([demand(wanted=1, hardware=frozenset({"hw4"}))], cars, busy={}, now=NOW)["ns/job"]
    assert got.cars == ("slow",)
    assert got.rejected == {"NoWorkForAccelerator": 1}
    anyone = placement.place([demand(wanted=1)], cars, busy={}, now=NOW)["ns/job"]
    assert anyone.cars == ("fast",)
