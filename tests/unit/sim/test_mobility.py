"""Mobility traces: deterministic, ordered, and shaped like real cars' days."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from curbside_agent import state
from curbside_agent.signals import reading
from curbside_sim import mobility, profiles

START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday, midnight
DAYS = 3
K = mobility.Kind


@pytest.fixture(scope="module")
def fleet() -> mobility.Fleet:
    return mobility.Fleet(cars=150, seed=11, start=START)


@pytest.fixture(scope="module")
def events(fleet: mobility.Fleet) -> list[mobility.Event]:
    return fleet.advance(START + timedelta(days=DAYS))


@pytest.fixture(scope="module")
def by_car(events: list[mobility.Event]) -> dict[int, list[mobility.Event]]:
    cars: dict[int, list[mobility.Event]] = defaultdict(list)
    for event in events:
        cars[event.car].append(event)
    return cars


def _trace(cars: int, seed: int, *, until: timedelta, steps: int = 1) -> list[mobility.Event]:
    fleet = mobility.Fleet(cars=cars, seed=seed, start=START)
    out: list[mobility.Event] = []
    for step in range(1, steps + 1):
        out += fleet.advance(START + until * step / steps)
    return out


def test_same_seed_same_trace_in_any_number_of_steps() -> None:
    whole = _trace(60, 5, until=timedelta(days=2))
    assert whole == _trace(60, 5, until=timedelta(days=2), steps=7)
    assert whole != _trace(60, 6, until=timedelta(days=2))


def test_a_car_does_not_depend_on_the_size_of_the_fleet(by_car: dict[int, list[mobility.Event]]) -> None:
    small = [event for event in _trace(20, 11, until=timedelta(days=DAYS)) if event.car == 7]
    assert small == by_car[7]


def test_events_are_in_time_order_and_every_car_starts_at_start(events: list[mobility.Event]) -> None:
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))
    assert [(event.car, event.at) for event in events[:150]] == [(car, START) for car in range(150)]
    assert all(event.reading is None or event.reading.timestamp == event.at for event in events)


def test_advance_is_incremental(fleet: mobility.Fleet, events: list[mobility.Event]) -> None:
    assert fleet.advance(START + timedelta(days=DAYS)) == []
    assert fleet.now == START + timedelta(days=DAYS)


def test_departures_are_announced_by_key_door_and_seat(by_car: dict[int, list[mobility.Event]]) -> None:
    departures = 0
    for trace in by_car.values():
        readings = [event.reading for event in trace if event.reading is not None]
        for index, value in enumerate(readings[1:], start=1):
            last = readings[index - 1]
            if value.gear is not reading.Gear.DRIVE or last.gear is not reading.Gear.PARK:
                continue
            departures += 1
            assert value.timestamp - last.timestamp == timedelta(minutes=1)
            assert (last.seat_occupied, last.door_unlocked, last.key_nearby) == (True, True, True)
            assert (last.asleep, last.charging) == (False, False)
            first = index - 1
            while (
                first > 0 and readings[first - 1].key_nearby and readings[first - 1].gear is reading.Gear.PARK
            ):
                first -= 1
            if readings[first].timestamp > START:
                assert value.timestamp - readings[first].timestamp == timedelta(minutes=5)
            prediction = state.predicted_departure(last, None, now=last.timestamp)
            assert prediction is not None
            assert prediction.at <= value.timestamp  # never later than the actual departure
    assert departures > 150


def test_battery_and_signals_stay_physical(events: list[mobility.Event]) -> None:
    last: dict[int, reading.Reading] = {}
    for event in events:
        value = event.reading
        if value is None:
            continue
        assert 1.0 <= value.battery_percent <= 100.0
        assert not (value.asleep and value.charging)
        driving = value.gear is reading.Gear.DRIVE
        assert not (driving and (value.asleep or value.charging))
        assert (value.network is reading.Network.METERED) or not driving
        previous = last.get(event.car)
        if previous is not None and event.kind is K.CHANGED:
            if previous.gear is reading.Gear.DRIVE:
                assert value.battery_percent <= previous.battery_percent
            if previous.charging:
                assert value.battery_percent >= previous.battery_percent
        last[event.car] = value


def test_commuters_leave_home_near_their_habit(
    fleet: mobility.Fleet, by_car: dict[int, list[mobility.Event]]
) -> None:
    checked = 0
    for car in fleet.profiles:
        if car.archetype is not profiles.Archetype.COMMUTER or car.flaky:
            continue
        for day in range(DAYS):
            midnight = START + timedelta(days=day)
            first = next(
                event.at
                for event in by_car[car.index]
                if event.at >= midnight and event.reading and event.reading.gear is reading.Gear.DRIVE
            )
            assert abs((first - midnight).total_seconds() - car.leave_at) < 45 * 60
            checked += 1
    assert checked > 100


def _asleep_share(
    fleet: mobility.Fleet, by_car: dict[int, list[mobility.Event]], kind: profiles.Archetype
) -> float:
    asleep = total = 0.0
    end = START + timedelta(days=DAYS)
    for car in fleet.profiles:
        if car.archetype is not kind or car.flaky:
            continue
        trace = by_car[car.index]
        for event, following in zip(trace, [*trace[1:], None], strict=True):
            span = ((following.at if following else end) - event.at).total_seconds()
            total += span
            asleep += span if event.reading is not None and event.reading.asleep else 0.0
    return asleep / total


def test_rare_cars_mostly_sleep(fleet: mobility.Fleet, by_car: dict[int, list[mobility.Event]]) -> None:
    rare = _asleep_share(fleet, by_car, profiles.Archetype.RARE)
    commuters = _asleep_share(fleet, by_car, profiles.Archetype.COMMUTER)
    night = _asleep_share(fleet, by_car, profiles.Archetype.NIGHT_CHARGER)
    assert rare > 0.8
    assert rare > commuters > night


def test_night_chargers_charge_overnight_with_a_scheduled_departure() -> None:
    fleet = mobility.Fleet(cars=40, seed=3, start=START, mix={profiles.Archetype.NIGHT_CHARGER: 1.0})
    fleet.advance(START + timedelta(days=1, hours=3))  # Tuesday 03:00
    readings = [fleet.current(car) for car in range(40)]
    present = [value for value in readings if value is not None]
    assert len(present) >= 36
    assert sum(value.charging for value in present) >= 0.9 * len(present)
    scheduled = [value.scheduled_departure for value in present if value.scheduled_departure is not None]
    assert len(scheduled) >= 0.9 * len(present)
    assert all(START + timedelta(days=1) < at < START + timedelta(days=1, hours=12) for at in scheduled)


def test_flaky_cars_vanish_and_stay_silent_until_they_reappear() -> None:
    fleet = mobility.Fleet(cars=30, seed=2, start=START, flaky_share=1.0)
    trace = fleet.advance(START + timedelta(days=4))
    silent: set[int] = set()
    vanished = reappeared = 0
    for event in trace:
        if event.kind is K.VANISHED:
            assert event.car not in silent
            assert fleet.profiles[event.car].flaky
            silent.add(event.car)
            vanished += 1
        elif event.kind is K.REAPPEARED:
            assert event.car in silent
            silent.discard(event.car)
            reappeared += 1
        else:
            assert event.car not in silent
    assert vanished > reappeared > 0
    for car in silent:
        assert fleet.current(car) is None


def test_current_moves_the_battery_along_between_events() -> None:
    fleet = mobility.Fleet(cars=1, seed=1, start=START, mix={profiles.Archetype.NIGHT_CHARGER: 1.0})
    (first,) = fleet.advance(START)
    assert first.reading is not None
    assert fleet.current(0) == first.reading
    fleet.advance(START + timedelta(seconds=30))
    later = fleet.current(0)
    assert later is not None
    assert later.timestamp == START + timedelta(seconds=30)
    assert later.battery_percent >= first.reading.battery_percent


def test_start_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        mobility.Fleet(cars=1, seed=1, start=datetime(2025, 3, 3))
