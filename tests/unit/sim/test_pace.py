"""The paced clock: each stretch of simulated time gets the speed that spreads its changes evenly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from curbside_sim import driver, mobility, pace, runner

START = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # 600 s buckets at 10 changes/s: a bucket of n changes runs at 6,000/n x, within 1..100.
        ([600], [(0, 0, 10)]),
        ([0, 600, 6000, 60], [(0, 0, 100), (600, 6, 10), (1200, 66, 1), (1800, 666, 100)]),
        # Equal neighbours share one segment; an empty bucket runs at the fastest speed.
        ([60, 30, 0, 600], [(0, 0, 100), (1800, 18, 10)]),
        ([], [(0, 0, 100)]),
    ],
)
def test_speeds_spread_each_buckets_changes_at_the_rate(
    counts: list[int], expected: list[tuple[float, float, float]]
) -> None:
    got = pace.speeds(counts, bucket=600, rate=10, slowest=1, fastest=100)
    assert [(s.sim, s.wall, s.speed) for s in got.segments] == [pytest.approx(e) for e in expected]


@pytest.mark.parametrize(
    ("rate", "slowest", "fastest", "field"),
    [(0, 1, 10, "rate"), (5, 0, 10, "slowest"), (5, 20, 10, "slowest")],
)
def test_bad_pacing_is_refused(rate: float, slowest: float, fastest: float, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        pace.speeds([1], bucket=600, rate=rate, slowest=slowest, fastest=fastest)


def test_sim_and_wall_convert_both_ways() -> None:
    segments = pace.speeds([0, 600, 6000, 60, 6], bucket=600, rate=10, slowest=1, fastest=100)
    for sim in [0.0, 1.0, 599.0, 600.0, 1234.5, 1800.0, 2999.0, 5000.0]:
        wall = segments.wall_at(sim)
        assert segments.sim_at(wall) == pytest.approx(sim)
    assert segments.speed_at(segments.wall_at(1300)) == 1
    assert pace.Schedule.from_json(segments.as_json()) == segments
    with pytest.raises(ValueError, match="segment"):
        pace.Schedule(())


def test_a_real_day_runs_fast_at_night_and_slow_in_the_rush() -> None:
    def fleet() -> mobility.Fleet:
        return mobility.Fleet(cars=200, seed=5, start=START, battery_step_percent=5)

    until = START + timedelta(days=1)
    rate = 2.0
    segments = pace.schedule(fleet, until=until, rate=rate, fastest=3600)
    night = segments.wall_at(22 * 3600) - segments.wall_at(21 * 3600)  # 03:00-04:00
    rush = segments.wall_at(2 * 3600) - segments.wall_at(1 * 3600)  # 07:00-08:00
    assert night == pytest.approx(1.0)  # an hour at 3,600x: nothing happens
    assert rush > 100 * night
    # Every 2-minute bucket yields at most `rate` changes per wall second (none is clamped slow).
    counted = fleet()
    counted.advance(START)
    moment = START
    while moment < until:
        later = moment + timedelta(minutes=2)
        changes = len(counted.advance(later))
        wall = segments.wall_at((later - START).total_seconds()) - segments.wall_at(
            (moment - START).total_seconds()
        )
        assert changes <= rate * wall + 1e-6
        moment = later


def test_a_paced_clock_maps_back_to_wall_time_and_survives_its_anchor() -> None:
    wall = [1000.0]
    segments = pace.speeds([600, 60], bucket=600, rate=10, slowest=1, fastest=100)
    clock = driver.SimClock(start=START, speed=100, wall=lambda: wall[0], paced=segments)
    clock.begin()
    wall[0] += 70.0  # 60 s at 10x (600 s), then 10 s at 100x (1,000 s)
    assert clock.now() == START + timedelta(seconds=1600)
    assert clock.current_speed() == 100
    assert clock.wall_of(clock.now()) == pytest.approx(wall[0])
    again = driver.SimClock.from_anchor(json.loads(json.dumps(clock.anchor())))
    assert again.wall_of(START + timedelta(seconds=300)) == pytest.approx(1030.0)
    plain = driver.SimClock.from_anchor({"start": START.isoformat(), "speed": 10, "wall0": 5.0})
    assert plain.wall_of(START + timedelta(seconds=100)) == pytest.approx(15.0)


@pytest.mark.parametrize(
    "argv",
    [["--cars", "5", "--pace", "100"], ["--cars", "5", "--pace", "-1", "--duration", "1d"]],
)
def test_pace_needs_a_duration_and_a_positive_rate(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert runner.main(argv) == 2
    assert "--pace" in capsys.readouterr().err
