"""One snapshot of a car's signals, and its JSON form with errors that name the field.

Why this module exists: every signal source (a file, a local HTTP endpoint, the simulator)
produces the same ``Reading``, and every pure module downstream (state, policy, status)
consumes only that. Parsing is hand-written rather than delegated to a schema library for
two reasons: a car gateway's JSON is small and flat, and the agent parses it several times a
second (the simulator ten thousand times as often), so it must be cheap; and a bad document
must fail with one line that names the field, its expected type and what was found
(``batteryPercent: expected a number from 0 to 100, got 'full'``), because the person reading
it is wiring a gateway, not debugging Python.

The JSON form uses camelCase like the Kubernetes objects the agent writes. Required fields:
``timestamp``, ``gear`` and ``batteryPercent``. Everything else has a safe default (not
charging, no network, doors locked, nobody near), so a minimal gateway works and a missing
signal never makes the car look more available than it is. ``energyUsedKwh`` (the inference
computer's cumulative energy counter) is optional: without it the owner's daily energy
budget counts only what is recorded through ``Agent.record_energy``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple


class Gear(StrEnum):
    """The gear selector. Only ``P`` means the car is parked."""

    PARK = "P"
    REVERSE = "R"
    NEUTRAL = "N"
    DRIVE = "D"


class Network(StrEnum):
    """What the car's data link costs: home/office WiFi, cellular, or nothing."""

    UNMETERED = "unmetered"
    METERED = "metered"
    NONE = "none"


class ReadingError(ValueError):
    """A signal document is not a valid reading. The message names the field (camelCase)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Reading(NamedTuple):
    """What the car's gateway says at ``timestamp``. Temperatures are None when not reported.

    A ``NamedTuple`` rather than a frozen dataclass: just as immutable, and about twice as
    cheap to build, which matters when the simulator builds millions of them per simulated day.
    Use ``_replace`` to derive a changed copy.
    """

    timestamp: datetime
    gear: Gear
    battery_percent: float
    speed_kph: float = 0.0
    charging: bool = False
    charger_power_kw: float = 0.0
    network: Network = Network.NONE
    cabin_celsius: float | None = None
    pack_celsius: float | None = None
    soc_celsius: float | None = None
    door_unlocked: bool = False
    key_nearby: bool = False
    seat_occupied: bool = False
    scheduled_departure: datetime | None = None
    charge_complete_at: datetime | None = None
    asleep: bool = False
    energy_used_kwh: float | None = None
    """The inference computer's cumulative energy counter (kWh since it last started), or None
    when the gateway has no meter. A counter, not a rate: a missed or late sample loses
    nothing, and a sleeping car (never read) needs no integration. It only grows, except that
    it restarts from zero when the computer reboots (``EnergyCounter`` in
    curbside_agent/policy.py counts a drop as a restart, never as negative energy)."""

    def to_json(self) -> dict[str, Any]:
        """The reading as its JSON document (the inverse of ``parse_reading``)."""
        doc: dict[str, Any] = {}
        for field in _FIELDS:
            value = getattr(self, field.attr)
            if value is None:
                continue
            doc[field.key] = value.isoformat() if isinstance(value, datetime) else value
        return doc


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_bool(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise ReadingError(key, f"expected true or false, got {_describe(value)}")


def _as_number(key: str, value: object, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReadingError(key, f"expected a number from {low:g} to {high:g}, got {_describe(value)}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ReadingError(key, f"expected a number from {low:g} to {high:g}, got {_describe(value)}")
    return number


def _as_time(key: str, value: object) -> datetime:
    if not isinstance(value, str):
        raise ReadingError(key, f"expected an RFC 3339 time string, got {_describe(value)}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ReadingError(key, f"expected an RFC 3339 time string, got {_describe(value)}") from None
    if parsed.tzinfo is None:
        raise ReadingError(key, f"time needs a UTC offset (for example 'Z'), got {_describe(value)}")
    return parsed


def _enum_parser(kind: type[Gear] | type[Network]) -> Callable[[str, object], object]:
    allowed = ", ".join(repr(member.value) for member in kind)

    def parse(key: str, value: object) -> object:
        if isinstance(value, str) and value in kind._value2member_map_:
            return kind(value)
        raise ReadingError(key, f"expected one of {allowed}, got {_describe(value)}")

    return parse


def _temperature(key: str, value: object) -> float:
    return _as_number(key, value, low=-60.0, high=150.0)


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    key: str
    attr: str
    parse: Callable[[str, object], object]
    required: bool = False


_FIELDS: tuple[_Field, ...] = (
    _Field("timestamp", "timestamp", _as_time, required=True),
    _Field("gear", "gear", _enum_parser(Gear), required=True),
    _Field(
        "batteryPercent", "battery_percent", lambda k, v: _as_number(k, v, low=0, high=100), required=True
    ),
    _Field("speedKph", "speed_kph", lambda k, v: _as_number(k, v, low=0, high=400)),
    _Field("charging", "charging", _as_bool),
    _Field("chargerPowerKw", "charger_power_kw", lambda k, v: _as_number(k, v, low=0, high=1000)),
    _Field("network", "network", _enum_parser(Network)),
    _Field("cabinCelsius", "cabin_celsius", _temperature),
    _Field("packCelsius", "pack_celsius", _temperature),
    _Field("socCelsius", "soc_celsius", _temperature),
    _Field("doorUnlocked", "door_unlocked", _as_bool),
    _Field("keyNearby", "key_nearby", _as_bool),
    _Field("seatOccupied", "seat_occupied", _as_bool),
    _Field("scheduledDeparture", "scheduled_departure", _as_time),
    _Field("chargeCompleteAt", "charge_complete_at", _as_time),
    _Field("asleep", "asleep", _as_bool),
    _Field("energyUsedKwh", "energy_used_kwh", lambda k, v: _as_number(k, v, low=0, high=1e9)),
)
_KNOWN = frozenset(field.key for field in _FIELDS)


def parse_reading(doc: object) -> Reading:
    """Turn a decoded JSON document into a ``Reading``; raise ``ReadingError`` naming the field.

    Unknown keys are refused too: a gateway that sends ``batteryPct`` would otherwise be
    read as a car with no battery field and fail far from the typo.
    """
    if not isinstance(doc, Mapping):
        raise ReadingError("(document)", f"expected a JSON object, got {_describe(doc)}")
    unknown = sorted(str(key) for key in doc if key not in _KNOWN)
    if unknown:
        raise ReadingError(unknown[0], f"unknown field (known: {', '.join(sorted(_KNOWN))})")
    values: dict[str, Any] = {}
    for field in _FIELDS:
        raw = doc.get(field.key)
        if raw is None:
            if field.required:
                raise ReadingError(field.key, "required field is missing")
            continue
        values[field.attr] = field.parse(field.key, raw)
    return Reading(**values)


def decode(text: str | bytes) -> object:
    """Decode JSON text; a syntax error becomes a ``ReadingError`` with line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReadingError(
            "(document)", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def parse_reading_json(text: str | bytes) -> Reading:
    """Parse a JSON text into a ``Reading`` (``decode`` then ``parse_reading``)."""
    return parse_reading(decode(text))


def parse_asleep(doc: object) -> bool:
    """Read only the ``asleep`` flag of a document; everything else is left unparsed.

    This is what the cheap sleep check uses: a sleeping car's gateway may serve a stale or
    partial document, and the agent must not fail (or look further) because of that.
    """
    if not isinstance(doc, Mapping):
        raise ReadingError("(document)", f"expected a JSON object, got {_describe(doc)}")
    raw = doc.get("asleep", False)
    return _as_bool("asleep", raw)
