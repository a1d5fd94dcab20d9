"""Held models share their fields-sets: half of the operator's memory per car at 10,000 cars.

Why this exists: the operator holds every car's VehicleNode as a pydantic model
(``FleetState.cars``). Parsed, one costs about 12 KiB (``bench/operator_memory.py``), and
more than half of that is pydantic's per-instance record of which fields were given
(``__pydantic_fields_set__``): a set of its own in each of a car's 15 nested models, though
cars of one shape give the same fields. ``share`` points every such set at one set per
(model class, fields given): 5.5 KiB per car, about 65 MB less at 10,000 cars.

Sharing equal parts as well (one hardware class, one default policy) was measured and left
out: with readings and times that differ per car, the cache of parts cost more than the
parts it saved.

The contract that makes sharing safe: a held model is read-only. The reconcilers copy what
they change (``model_copy``), and pydantic gives every copy a fields-set of its own.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

M = TypeVar("M", bound=pydantic.BaseModel)

_FIELD_SETS: dict[tuple[type[pydantic.BaseModel], frozenset[str]], set[str]] = {}
"""One set per (class, fields given): as many as the shapes of car seen, not one per car."""


def share(model: M) -> M:
    """``model``, with the fields-sets of it and every model inside it shared (in place)."""
    _share(model)
    return model


def shared_sets() -> int:
    """How many distinct fields-sets are held (for tests and the memory bench)."""
    return len(_FIELD_SETS)


def _share(value: Any) -> None:
    if isinstance(value, pydantic.BaseModel):
        given = value.__pydantic_fields_set__
        one = _FIELD_SETS.setdefault((type(value), frozenset(given)), given)
        object.__setattr__(value, "__pydantic_fields_set__", one)
        for item in value.__dict__.values():
            _share(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _share(item)
    elif isinstance(value, dict):
        for item in value.values():
            _share(item)
