"""The reading's JSON form: round trip, and errors that name the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from curbside_agent.signals import reading

T = "2025-03-03T08:00:00Z"


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"timestamp": T, "gear": "P", "batteryPercent": 80}
    doc.update(changes)
    return {key: value for key, value in doc.items() if value is not ...}


def test_minimal_document_gets_cautious_defaults() -> None:
    value = reading.parse_reading(_doc())
    assert value == reading.Reading(
        timestamp=datetime(2025, 3, 3, 8, tzinfo=UTC), gear=reading.Gear.PARK, battery_percent=80.0
    )
    assert (value.charging, value.network, value.door_unlocked, value.asleep) == (
        False,
        reading.Network.NONE,
        False,
        False,
    )


def test_full_document_round_trips() -> None:
    doc = _doc(
        speedKph=0,
        charging=True,
        chargerPowerKw=11.0,
        network="unmetered",
        cabinCelsius=21.5,
        packCelsius=30.0,
        socCelsius=45.0,
        doorUnlocked=True,
        keyNearby=True,
        seatOccupied=False,
        scheduledDeparture="2025-03-03T09:00:00+01:00",
        chargeCompleteAt="2025-03-03T08:30:00+00:00",
        asleep=False,
    )
    value = reading.parse_reading_json(json.dumps(doc))
    assert reading.parse_reading(json.loads(json.dumps(value.to_json()))) == value
    assert value.scheduled_departure == datetime(2025, 3, 3, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("doc", "field", "message"),
    [
        (_doc(gear=...), "gear", "required field is missing"),
        (_doc(timestamp=...), "timestamp", "required field is missing"),
        (_doc(gear="X"), "gear", "expected one of 'P', 'R', 'N', 'D', got 'X'"),
        (_doc(batteryPercent="full"), "batteryPercent", "expected a number from 0 to 100, got 'full'"),
        (_doc(batteryPercent=101), "batteryPercent", "from 0 to 100, got 101"),
        (_doc(batteryPercent=True), "batteryPercent", "got True"),
        (_doc(charging="yes"), "charging", "expected true or false, got 'yes'"),
        (_doc(network="wifi"), "network", "expected one of 'unmetered', 'metered', 'none'"),
        (_doc(timestamp="yesterday"), "timestamp", "RFC 3339"),
        (_doc(timestamp="2025-03-03T08:00:00"), "timestamp", "needs a UTC offset"),
        (_doc(batteryPct=50), "batteryPct", "unknown field"),
        (_doc(packCelsius=500), "packCelsius", "from -60 to 150"),
    ],
    ids=[
        "missing-gear",
        "missing-timestamp",
        "bad-gear",
        "battery-not-number",
        "battery-over-100",
        "battery-bool",
        "charging-not-bool",
        "network-unknown",
        "timestamp-not-time",
        "timestamp-naive",
        "unknown-field-typo",
        "temperature-out-of-range",
    ],
)
def test_bad_documents_name_the_field(doc: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(reading.ReadingError, match=message) as caught:
        reading.parse_reading(doc)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [("{", "invalid JSON at line 1 column 2"), ("[1]", "expected a JSON object")],
    ids=["truncated", "not-an-object"],
)
def test_bad_json_is_a_reading_error(text: str, message: str) -> None:
    with pytest.raises(reading.ReadingError, match=message):
        reading.parse_reading_json(text)


@pytest.mark.parametrize(
    ("doc", "want"),
    [({"asleep": True}, True), ({"asleep": False, "gear": "broken"}, False), ({}, False)],
    ids=["asleep", "awake-ignores-other-fields", "absent-means-awake"],
)
def test_parse_asleep_reads_only_the_flag(doc: dict[str, Any], want: bool) -> None:
    assert reading.parse_asleep(doc) is want
