"""Interval notation for sets of unit indexes: ``"0-99,105,200-204"``.

Why this exists: ``InferenceJob.status.completedUnits`` tells a user (and a restarted
operator) which work units are done without listing a million numbers, the way a batch
Job's ``status.completedIndexes`` does. The format is Job's: ascending, disjoint,
non-adjacent ranges separated by commas; a range of one index is written as that index.
These are pure functions over ``(first, last)`` pairs, so a job of ten million units never
becomes a list of ten million ints.
"""

from __future__ import annotations

from collections.abc import Iterable

Interval = tuple[int, int]
"""An inclusive range of unit indexes: ``(first, last)`` with ``0 <= first <= last``."""


class IntervalSyntaxError(ValueError):
    """The text is not in interval notation; the message says where."""


def from_indexes(indexes: Iterable[int]) -> list[Interval]:
    """The fewest ascending, disjoint, non-adjacent intervals covering ``indexes``."""
    out: list[Interval] = []
    for index in sorted(set(indexes)):
        if index < 0:
            raise ValueError(f"unit index {index} is negative")
        if out and index == out[-1][1] + 1:
            out[-1] = (out[-1][0], index)
        else:
            out.append((index, index))
    return out


def normalize(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or adjacent intervals."""
    out: list[Interval] = []
    for first, last in sorted(intervals):
        if first < 0 or last < first:
            raise ValueError(f"bad interval {first}-{last}")
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def format(intervals: Iterable[Interval]) -> str:
    """``[(0, 99), (105, 105)]`` -> ``"0-99,105"`` (normalized first)."""
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in normalize(intervals))


def parse(text: str) -> list[Interval]:
    """``"0-99,105"`` -> ``[(0, 99), (105, 105)]``. The empty string is the empty set.

    Only canonical text is accepted (what ``format`` writes): ascending, no overlaps, no
    adjacent ranges, no spaces, no leading zeros.
    """
    if text == "":
        return []
    out: list[Interval] = []
    for position, part in enumerate(text.split(",")):
        first_text, dash, last_text = part.partition("-")
        first = _number(first_text, part=part, position=position)
        last = _number(last_text, part=part, position=position) if dash else first
        if last <= first and dash:
            raise IntervalSyntaxError(f"range {part!r} (item {position}) must go up")
        if out and first <= out[-1][1] + 1:
            raise IntervalSyntaxError(f"{part!r} (item {position}) overlaps or touches the previous range")
        out.append((first, last))
    return out


def _number(text: str, *, part: str, position: int) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise IntervalSyntaxError(f"{part!r} (item {position}) is not a number or a range like 3-7")
    return int(text)


def count(intervals: Iterable[Interval]) -> int:
    """How many indexes the intervals cover."""
    return sum(last - first + 1 for first, last in normalize(intervals))


def contains(intervals: list[Interval], index: int) -> bool:
    """Whether ``index`` is covered by the normalized ``intervals`` (binary search)."""
    lo, hi = 0, len(intervals)
    while lo < hi:
        mid = (lo + hi) // 2
        first, last = intervals[mid]
        if index < first:
            hi = mid
        elif index > last:
            lo = mid + 1
        else:
            return True
    return False
