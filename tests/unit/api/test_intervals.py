"""Interval notation for completed units ("0-99,105"): a table of cases and round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curbside_api import intervals


@pytest.mark.parametrize(
    ("indexes", "text"),
    [
        pytest.param([], "", id="empty"),
        pytest.param([0], "0", id="single"),
        pytest.param([0, 1], "0-1", id="adjacent-pair-is-a-range"),
        pytest.param([3, 1, 2, 2], "1-3", id="unsorted-with-duplicates"),
        pytest.param([*range(100), 105], "0-99,105", id="range-and-single"),
        pytest.param([1, 3, 5], "1,3,5", id="all-singles"),
        pytest.param([7, 8, 9, 20, 21, 40], "7-9,20-21,40", id="mixed"),
    ],
)
def test_format_and_parse(indexes: list[int], text: str) -> None:
    assert intervals.format(intervals.from_indexes(indexes)) == text
    assert intervals.count(intervals.parse(text)) == len(set(indexes))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a", id="letter"),
        pytest.param("1,", id="trailing-comma"),
        pytest.param(",1", id="leading-comma"),
        pytest.param("1-", id="open-range"),
        pytest.param("-1", id="negative"),
        pytest.param("5-3", id="descending-range"),
        pytest.param("3-3", id="one-index-range-is-not-canonical"),
        pytest.param("3,1", id="descending-order"),
        pytest.param("1-5,4", id="overlap"),
        pytest.param("1-5,6", id="adjacent-should-merge"),
        pytest.param("01", id="leading-zero"),
        pytest.param("1, 2", id="space"),
        pytest.param("1-2-3", id="double-dash"),
        pytest.param("١", id="non-ascii-digit"),
    ],
)
def test_parse_refuses_non_canonical_text(text: str) -> None:
    with pytest.raises(intervals.IntervalSyntaxError):
        intervals.parse(text)


def test_normalize_merges_overlapping_and_adjacent() -> None:
    assert intervals.normalize([(5, 9), (0, 2), (3, 4), (8, 12), (20, 20)]) == [(0, 12), (20, 20)]


@pytest.mark.parametrize("bad", [(-1, 2), (5, 4)], ids=["negative", "backwards"])
def test_normalize_refuses_bad_intervals(bad: intervals.Interval) -> None:
    with pytest.raises(ValueError, match="bad interval"):
        intervals.normalize([bad])


def test_from_indexes_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        intervals.from_indexes([1, -1])


def test_contains_uses_the_intervals() -> None:
    ranges = intervals.parse("0-99,105,200-204")
    assert [i for i in range(300) if intervals.contains(ranges, i)] == [*range(100), 105, *range(200, 205)]


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=300), max_size=60))
def test_round_trip(indexes: set[int]) -> None:
    text = intervals.format(intervals.from_indexes(indexes))
    parsed = intervals.parse(text)
    assert {i for first, last in parsed for i in range(first, last + 1)} == indexes
    assert intervals.format(parsed) == text
    assert intervals.count(parsed) == len(indexes)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="0123456789,-", max_size=12))
def test_parse_either_round_trips_or_says_why(text: str) -> None:
    try:
        parsed = intervals.parse(text)
    except intervals.IntervalSyntaxError as exc:
        message = str(exc)
        assert "item" in message
    else:
        assert intervals.format(parsed) == text
