"""Cars that lie: the simulator's broken and cheating cars, for proving the operator catches them.

Why this exists: SETI@home found teams forging results; a car fleet owned by the public will
have broken hardware and a few cheaters. The operator's defences (replication, quorum, probes,
quarantine; ``curbside_operator.dispatch.sqlite_trust``) can only be shown to work against
cars that really lie, through the real worker and dispatcher. So a simulated car may be given
one of these behaviours; its worker computes the honest result with Triton as usual, and the
car changes it just before submitting:

- ``perturb``: every number moved by more than any sane tolerance (broken hardware, or a cheap
  approximation), and a made-up candidate where there was nothing to move.
- ``replay``: the first result it ever computed, sent again, byte for byte, for every later
  unit (a cheater saving work; the result names its first unit, which the dispatcher checks).
- ``random``: output of the right shape with made-up values.

``perturb`` and ``random`` keep the item and unit numbers, so that what catches them is the
comparison of values (quorum, probes), not the unit check.

Cheaters are drawn per car from a seed, so a run is reproducible; ``forged`` keeps every lie
told as ``(unit, output hash)``, so a test can prove none of them became that unit's accepted
result (a replayed output is some other unit's honest one: only the pair is a lie).
"""

from __future__ import annotations

import random
import threading
from typing import Any

from curbside_worker.workloads import catalog

MODES = ("perturb", "replay", "random")
KEPT = ("item", "unit")
"""Keys ``perturb`` and ``random`` never change: the values lie, not the numbering."""


def assign(cars: list[str], *, seed: int, shares: dict[str, float]) -> dict[str, str]:
    """Which cars cheat and how: ``shares`` maps a mode to the fraction of ``cars`` that use it."""
    unknown = set(shares) - set(MODES)
    if unknown:
        raise ValueError(f"unknown cheat modes {sorted(unknown)}; known: {', '.join(MODES)}")
    order = sorted(cars)
    random.Random(seed).shuffle(order)
    chosen: dict[str, str] = {}
    start = 0
    for mode in MODES:
        count = round(shares.get(mode, 0.0) * len(order))
        chosen.update((car, mode) for car in order[start : start + count])
        start += count
    return chosen


def _moved(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value + (0.5 + abs(value)) * rng.uniform(0.05, 0.5)
    if isinstance(value, int):
        return value + rng.randint(1, 3)
    if isinstance(value, list):
        return [_moved(v, rng) for v in value]
    if isinstance(value, dict):
        return {k: v if k in KEPT else _moved(v, rng) for k, v in value.items()}
    return value


def _random(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return rng.random() < 0.5
    if isinstance(value, float):
        return rng.uniform(-10, 10)
    if isinstance(value, int):
        return rng.randint(0, 1000)
    if isinstance(value, list):
        return [_random(v, rng) for v in value] + ([rng.uniform(0, 1)] if rng.random() < 0.5 else [])
    if isinstance(value, dict):
        return {k: v if k in KEPT else _random(v, rng) for k, v in value.items()}
    return value


class Cheater:
    """One car's lie. ``tell(result)`` returns what the car submits instead of ``result``."""

    def __init__(self, mode: str, *, seed: int, forged: set[tuple[int, str]] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown cheat mode {mode!r}; known: {', '.join(MODES)}")
        self.mode = mode
        self.rng = random.Random(seed)
        self.first: dict[str, Any] | None = None
        self.forged = forged if forged is not None else set()
        self._lock = threading.Lock()

    def tell(self, result: dict[str, Any], *, unit: int) -> dict[str, Any]:
        """What the car sends for ``unit`` instead of its honest ``result``."""
        with self._lock:
            if self.mode == "replay":
                if self.first is None:  # nothing saved yet: this one is honest, and kept
                    self.first = result
                    return result
                lie = self.first
            elif self.mode == "perturb":
                lie = _moved(result, self.rng)
                if lie == result:
                    lie = {**result, "note": self.rng.random()}
            else:
                lie = _random(result, self.rng)
            if lie != result:
                self.forged.add((unit, catalog.output_hash(lie)))
            return lie
