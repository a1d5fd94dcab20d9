"""Car state from a reading, and the departure predictor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from curbside_agent import state
from curbside_agent.signals import reading

NOW = datetime(2025, 3, 5, 7, 0, tzinfo=UTC)  # a Wednesday
S = state.CarState
B = state.Basis


def _r(**changes: Any) -> reading.Reading:
    base = reading.Reading(timestamp=NOW, gear=reading.Gear.PARK, battery_percent=70.0)
    return base._replace(**changes)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (_r(), S.PARKED),
        (_r(charging=True), S.CHARGING),
        (_r(asleep=True), S.ASLEEP),
        (_r(asleep=True, charging=True), S.ASLEEP),
        (_r(gear=reading.Gear.DRIVE), S.DRIVING),
        (_r(gear=reading.Gear.REVERSE, charging=True), S.DRIVING),
        (_r(gear=reading.Gear.NEUTRAL), S.DRIVING),
        (_r(speed_kph=3.0), S.DRIVING),
        (_r(gear=reading.Gear.DRIVE, asleep=True), S.DRIVING),
    ],
    ids=[
        "parked",
        "charging",
        "asleep",
        "asleep-wins-over-charging",
        "drive",
        "reverse-while-plugged",
        "neutral",
        "rolling-in-park",
        "driving-wins-over-asleep-flag",
    ],
)
def test_car_state(value: reading.Reading, want: state.CarState) -> None:
    assert state.car_state(value) is want


def _history(*departures: datetime, since: datetime | None = None) -> state.DepartureHistory:
    return state.DepartureHistory(tz=UTC, since=since or NOW - timedelta(weeks=3), departures=departures)


# Wednesdays at 07:40 on the three previous weeks: a habit.
HABIT = _history(*(NOW - timedelta(weeks=w) + timedelta(minutes=40) for w in (1, 2, 3)))


@pytest.mark.parametrize(
    ("value", "history", "want"),
    [
        (_r(), None, None),
        (_r(gear=reading.Gear.DRIVE, seat_occupied=True), HABIT, None),
        (_r(seat_occupied=True, door_unlocked=True), None, (timedelta(minutes=1), 0.95, B.SEAT_OCCUPIED)),
        (_r(door_unlocked=True, key_nearby=True), None, (timedelta(minutes=2), 0.9, B.DOOR_AND_KEY)),
        (_r(door_unlocked=True), None, (timedelta(minutes=3), 0.7, B.DOOR_UNLOCKED)),
        (_r(key_nearby=True), None, (timedelta(minutes=5), 0.6, B.KEY_NEARBY)),
        (
            _r(scheduled_departure=NOW + timedelta(hours=2)),
            None,
            (timedelta(hours=2), 0.9, B.SCHEDULED_DEPARTURE),
        ),
        (_r(scheduled_departure=NOW - timedelta(minutes=1)), None, None),
        (
            _r(charging=True, charge_complete_at=NOW + timedelta(hours=1)),
            None,
            (timedelta(hours=1), 0.3, B.CHARGE_COMPLETE),
        ),
        (_r(charge_complete_at=NOW + timedelta(hours=1)), None, None),
        (_r(), HABIT, (timedelta(minutes=30), 1.0, B.LEARNED_PATTERN)),
        (
            _r(key_nearby=True, scheduled_departure=NOW + timedelta(minutes=20)),
            HABIT,
            (timedelta(minutes=5), 0.6, B.KEY_NEARBY),
        ),
        (
            _r(charging=True, charge_complete_at=NOW + timedelta(minutes=10)),
            HABIT,
            (timedelta(minutes=30), 1.0, B.LEARNED_PATTERN),
        ),
    ],
    ids=[
        "no-signal",
        "driving-has-no-prediction",
        "seat-beats-door",
        "door-and-key",
        "door",
        "key",
        "scheduled",
        "scheduled-in-the-past-ignored",
        "charge-complete-weak-hint",
        "charge-complete-needs-charging",
        "learned-slot-start",
        "earliest-confident-wins",
        "weak-earlier-hint-loses-to-confident-later",
    ],
)
def test_predicted_departure(
    value: reading.Reading,
    history: state.DepartureHistory | None,
    want: tuple[timedelta, float, state.Basis] | None,
) -> None:
    got = state.predicted_departure(value, history, now=NOW)
    assert (None if got is None else (got.at - NOW, got.confidence, got.basis)) == want


@pytest.mark.parametrize(
    ("departures", "since", "want_confidence"),
    [
        ((1, 2, 3), 3, 1.0),
        ((1, 3), 4, 0.5),
        ((1,), 3, None),
        ((1, 2), 1, None),
    ],
    ids=["every-week", "half-the-weeks", "once-is-not-a-habit", "too-few-days-observed"],
)
def test_learned_confidence_is_share_of_observed_days(
    departures: tuple[int, ...], since: int, want_confidence: float | None
) -> None:
    history = _history(
        *(NOW - timedelta(weeks=w) + timedelta(minutes=40) for w in departures),
        since=NOW - timedelta(weeks=since, hours=1) if since > 1 else NOW - timedelta(days=6),
    )
    got = state.learned_departure(history, now=NOW)
    assert (None if got is None else got.confidence) == want_confidence


def test_learned_pattern_looks_ahead_to_the_next_matching_weekday() -> None:
    after_departure = NOW + timedelta(hours=3)  # Wednesday 10:00: today's slot has passed
    got = state.learned_departure(HABIT, now=after_departure)
    assert got is not None
    assert got.at == NOW + timedelta(weeks=1, minutes=30)


def test_history_forgets_old_departures() -> None:
    history = state.DepartureHistory(tz=UTC, since=NOW - timedelta(weeks=20), max_age=timedelta(weeks=4))
    history = history.with_departure(NOW - timedelta(weeks=10)).with_departure(NOW)
    assert history.departures == (NOW,)
    assert history.since == NOW - timedelta(weeks=4)
