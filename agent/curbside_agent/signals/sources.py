"""The ``VehicleSignals`` protocol and its sources: a JSON file, a local HTTP endpoint, memory.

Why this module exists: the agent loop asks one question per tick ("what is the car doing?")
and must not know where the answer comes from. A production car has a vehicle gateway (the
always-on, low-power telematics unit) that either rewrites a JSON file or serves the same
JSON on a local HTTP port; the fleet simulator pushes readings into memory.

Never waking a sleeping car
---------------------------
Waking a car is expensive: fleet APIs price wake-ups and every wake drains the 12 V and
high-voltage batteries. A car's main computer sleeps; its gateway keeps a cheap flag. So the
protocol has two calls, and the agent uses them in this order:

1. ``asleep()`` reads only the gateway's sleep flag. It never touches the main computer.
2. ``read()`` asks for the full reading, which on a real car may keep the main computer
   awake or wake it. The agent calls it **only when ``asleep()`` said False**. While the car
   sleeps the agent reports ``Asleep`` with the last values it saw and does nothing else.

For the file and HTTP sources, the gateway writes the flag into the same document (or serves
it on a separate, cheaper URL when given ``asleep_url``), so ``asleep()`` parses only that key.
``MemorySource`` counts full reads taken while the car slept (``wakes``); the unit tests hold
the agent to zero.

Energy: ``MemorySource`` also plays the inference computer's energy counter for simulated
cars, whose mobility traces know nothing of work: ``use_energy(kwh)`` makes the counter grow
(whatever runs work on the car calls it) and ``reboot()`` resets it to zero; every reading it
returns carries the counter as ``energyUsedKwh`` unless the reading brought its own.

Errors: a document that is not a valid reading raises ``reading.ReadingError`` (naming the
field); a source that cannot be reached at all raises ``SignalsUnavailableError``. The agent
treats both the same way (stop local work, say ``SignalsUnavailable``), because in both cases
it no longer knows the car is parked.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol

import httpx

from curbside_agent.signals import reading


class SignalsUnavailableError(RuntimeError):
    """The source could not be read at all (file missing, endpoint down, no reading yet)."""


class VehicleSignals(Protocol):
    """Where the agent reads the car's signals. See the module docstring for the wake rule."""

    async def asleep(self) -> bool:
        """Whether the car sleeps, from the gateway's cheap flag. Never wakes the car."""
        ...

    async def read(self) -> reading.Reading:
        """The full reading. May wake a sleeping car: call only after ``asleep()`` is False."""
        ...


@dataclasses.dataclass
class FileSource:
    """A JSON file the vehicle gateway rewrites (atomically, by rename) on every change."""

    path: Path

    def _load(self) -> object:
        try:
            text = self.path.read_bytes()
        except OSError as exc:
            raise SignalsUnavailableError(f"cannot read vehicle signals from {self.path}: {exc}") from exc
        try:
            return reading.decode(text)
        except reading.ReadingError as exc:
            raise reading.ReadingError(exc.field, f"{exc} (in {self.path})") from None

    async def asleep(self) -> bool:
        return reading.parse_asleep(self._load())

    async def read(self) -> reading.Reading:
        return reading.parse_reading(self._load())


class HttpSource:
    """A local HTTP endpoint (``GET`` returns the reading's JSON), read with httpx.

    ``asleep_url``, when the gateway has one, serves ``{"asleep": bool}`` without consulting
    the main computer; without it the sleep flag is read from the main document, which the
    gateway serves from its own cache.
    """

    def __init__(
        self,
        url: str,
        *,
        asleep_url: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout_seconds: float = 1.0,
    ) -> None:
        self.url = url
        self.asleep_url = asleep_url
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout_seconds)

    async def _get(self, url: str) -> object:
        try:
            response = await self._client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise SignalsUnavailableError(f"cannot read vehicle signals from {url}: {exc}") from exc
        return reading.decode(response.content)

    async def asleep(self) -> bool:
        return reading.parse_asleep(await self._get(self.asleep_url or self.url))

    async def read(self) -> reading.Reading:
        return reading.parse_reading(await self._get(self.url))

    async def aclose(self) -> None:
        """Close the HTTP client (also one passed in: the source owns it from then on)."""
        await self._client.aclose()


@dataclasses.dataclass
class MemorySource:
    """A reading held in memory, pushed by the fleet simulator (or a test) with ``update``.

    It also keeps the books on how it was used: ``full_reads`` and ``sleep_checks`` count
    calls, ``wakes`` counts full reads while the car slept (a real car would have woken).
    """

    current: reading.Reading | None = None
    full_reads: int = 0
    sleep_checks: int = 0
    wakes: int = 0
    energy_kwh: float = 0.0
    """The simulated inference computer's cumulative energy counter (see the module docstring)."""

    def use_energy(self, kwh: float) -> None:
        """The car's computer used ``kwh`` more (negative amounts are refused: it is a counter)."""
        if kwh < 0:
            raise ValueError(f"energy used must not be negative, got {kwh}")
        self.energy_kwh += kwh

    def reboot(self) -> None:
        """The computer restarted: its counter begins again at zero."""
        self.energy_kwh = 0.0

    def update(self, value: reading.Reading | None) -> None:
        """Replace the reading; ``None`` makes the source unavailable (the car went silent)."""
        self.current = value

    def _require(self) -> reading.Reading:
        if self.current is None:
            raise SignalsUnavailableError("the simulated car has no reading")
        return self.current

    async def asleep(self) -> bool:
        self.sleep_checks += 1
        return self._require().asleep

    async def read(self) -> reading.Reading:
        value = self._require()
        self.full_reads += 1
        if value.asleep:
            self.wakes += 1
        if value.energy_used_kwh is None:
            value = value._replace(energy_used_kwh=self.energy_kwh)
        return value
