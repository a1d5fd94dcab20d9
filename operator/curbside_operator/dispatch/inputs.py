"""Cutting a job's input into work units: how many there are, and what a worker gets for each.

Why this exists: the ledger only knows unit numbers; a worker needs to know what unit 17
*is*. An ``InputSource`` answers both questions from the job's ``spec.input`` alone, without
I/O, so the dispatcher can hand out input with every lease and the same spec always cuts the
same way (a restarted operator, or a replica on another car, sees identical units).

Sources, one per kind of ``spec.input``:

- ``generated``: the worker generates the data itself from ``{"seed", "unit", "itemsPerUnit",
  "parameters"}``, deterministically: nothing is shipped, and a known answer can be checked.
- ``inline``: the unit's slice of ``items``, with its ``offset`` in the whole list.
- ``dataset``: ``{"uri", "offset", "count"}``, a range of lines the worker reads itself. The
  number of items is not in the spec; whoever registers the job passes it (``count_items``
  counts the lines of a ``file://`` dataset).

A spec that cannot be cut (no items, too many units, a dataset of unknown size) raises
``UnsplittableInput`` naming the field, which the operator turns into a ``Failed`` condition.
Other sources (a manifest of object keys, a database query) implement ``InputSource``.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
import urllib.request
from typing import Any, Protocol

from curbside_api.v1alpha1 import inferencejob

MAX_UNITS = inferencejob.MAX_UNITS
FIELD = "spec.input"


class UnsplittableInput(ValueError):
    """The job's input cannot be cut into work units; ``field`` is its path in API notation."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class InputSource(Protocol):
    """A job's input, cut into ``units`` work units."""

    @property
    def units(self) -> int:
        """How many work units the input makes (at least 1)."""
        ...

    def unit_input(self, unit: int) -> dict[str, Any]:
        """The JSON a worker gets with a lease of ``unit`` (``0 <= unit < units``)."""
        ...


def _units(items: int, per_unit: int, *, field: str) -> int:
    """Units needed for ``items`` items, ``per_unit`` at a time; refuses 0 and too many."""
    if items < 1:
        raise UnsplittableInput(field, "there are no items to cut into work units")
    if per_unit < 1:
        raise UnsplittableInput(f"{field.rsplit('.', 1)[0]}.itemsPerUnit", "must be at least 1")
    units = -(-items // per_unit)
    if units > MAX_UNITS:
        raise UnsplittableInput(
            f"{field.rsplit('.', 1)[0]}.itemsPerUnit",
            f"{items} items, {per_unit} per unit, make {units} units: more than {MAX_UNITS}",
        )
    return units


def _check(unit: int, units: int) -> None:
    if not 0 <= unit < units:
        raise IndexError(f"unit {unit} is outside 0..{units - 1}")


@dataclasses.dataclass(frozen=True)
class GeneratedSource:
    """Units the worker generates from a seed."""

    seed: int
    units: int
    items_per_unit: int
    parameters: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _units(self.units, 1, field=f"{FIELD}.generated.units")

    def unit_input(self, unit: int) -> dict[str, Any]:
        _check(unit, self.units)
        return {
            "seed": self.seed,
            "unit": unit,
            "itemsPerUnit": self.items_per_unit,
            "parameters": dict(self.parameters),
        }


@dataclasses.dataclass(frozen=True)
class InlineSource:
    """Items written into the job, ``items_per_unit`` to a unit (the last one may be shorter)."""

    items: tuple[str, ...]
    items_per_unit: int

    @property
    def units(self) -> int:
        return _units(len(self.items), self.items_per_unit, field=f"{FIELD}.inline.items")

    def __post_init__(self) -> None:
        _ = self.units

    def unit_input(self, unit: int) -> dict[str, Any]:
        _check(unit, self.units)
        offset = unit * self.items_per_unit
        return {
            "unit": unit,
            "offset": offset,
            "items": list(self.items[offset : offset + self.items_per_unit]),
        }


@dataclasses.dataclass(frozen=True)
class DatasetSource:
    """A range of lines of the object at ``uri`` per unit; the worker reads them itself."""

    uri: str
    items: int
    items_per_unit: int

    @property
    def units(self) -> int:
        return _units(self.items, self.items_per_unit, field=f"{FIELD}.dataset.uri")

    def __post_init__(self) -> None:
        _ = self.units

    def unit_input(self, unit: int) -> dict[str, Any]:
        _check(unit, self.units)
        offset = unit * self.items_per_unit
        count = min(self.items_per_unit, self.items - offset)
        return {"uri": self.uri, "unit": unit, "offset": offset, "count": count}


def source_for(spec_input: inferencejob.Input, *, dataset_items: int | None = None) -> InputSource:
    """The source for a job's ``spec.input``. ``dataset_items``: the dataset's item count,
    needed (only) for ``dataset`` inputs."""
    if spec_input.generated is not None:
        g = spec_input.generated
        return GeneratedSource(g.seed, g.units, g.items_per_unit, dict(g.parameters))
    if spec_input.inline is not None:
        return InlineSource(tuple(spec_input.inline.items), spec_input.inline.items_per_unit)
    if spec_input.dataset is not None:
        d = spec_input.dataset
        if dataset_items is None:
            raise UnsplittableInput(f"{FIELD}.dataset.uri", f"the number of items in {d.uri} is not known")
        return DatasetSource(d.uri, dataset_items, d.items_per_unit)
    raise UnsplittableInput(FIELD, "exactly one of generated, inline or dataset must be set")


def count_items(uri: str) -> int:
    """Items (lines) in a ``file://`` dataset; a last line without a newline counts too.

    The one function here that reads anything; other schemes raise ``UnsplittableInput``.
    """
    parsed = urllib.parse.urlparse(uri)
    field = f"{FIELD}.dataset.uri"
    if parsed.scheme != "file":
        raise UnsplittableInput(
            field, f"cannot count the items of {uri}: only file:// datasets are supported"
        )
    path = urllib.request.url2pathname(parsed.path)
    lines, last = 0, b"\n"
    try:
        with open(path, "rb") as data:
            while block := data.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
    except OSError as error:
        raise UnsplittableInput(field, f"cannot read {uri}: {error.strerror or error}") from error
    return lines + (last != b"\n")
