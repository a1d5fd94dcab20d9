"""Percentiles, summaries and per-second throughput: the arithmetic both sides share."""

from __future__ import annotations

import pytest

from curbside_bench import stats


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert stats.percentile(values, 0.0) == 1.0
    assert stats.percentile(values, 1.0) == 4.0
    assert stats.percentile(values, 0.5) == pytest.approx(2.5)
    assert stats.percentile(values, 0.99) == pytest.approx(3.97)
    assert stats.percentile([7.0], 0.99) == 7.0


def test_percentile_ignores_input_order() -> None:
    assert stats.percentile([5.0, 1.0, 3.0], 0.5) == 3.0


@pytest.mark.parametrize(("values", "share"), [([], 0.5), ([1.0], -0.1), ([1.0], 1.5)])
def test_percentile_refuses_what_cannot_be_answered(values: list[float], share: float) -> None:
    with pytest.raises(stats.StatsError):
        stats.percentile(values, share)


def test_summary_of_latencies() -> None:
    s = stats.summary([0.5, 1.0, 1.5, 10.0])
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(3.25)
    assert s["p50"] == pytest.approx(1.25)
    assert s["max"] == 10.0
    assert s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
    assert stats.summary([]) == {"n": 0}


def test_parse_time_reads_the_api_servers_timestamps() -> None:
    assert stats.parse_time("1970-01-01T00:00:10Z") == 10.0
    assert stats.parse_time("1970-01-01T00:00:10.250000Z") == pytest.approx(10.25)
    with pytest.raises(stats.StatsError, match="empty"):
        stats.parse_time("")


def test_per_second_counts_events_in_whole_second_buckets() -> None:
    # 3 placements in second 100, 1 in 101, none in 102, 2 in 103.
    t = [100.1, 100.5, 100.9, 101.2, 103.0, 103.4]
    f = stats.per_second(t)
    assert f["n"] == 6
    assert f["span_s"] == pytest.approx(3.3)
    assert f["average"] == pytest.approx(6 / 3.3)
    assert f["peak"] == 3.0
    assert f["p50"] == pytest.approx(1.5)  # buckets 3, 1, 0, 2


def test_per_second_counts_from_the_start_when_given() -> None:
    f = stats.per_second([12.0, 12.5], start=10.0)
    assert f["span_s"] == pytest.approx(2.5)
    assert f["p50"] == 0.0  # seconds 10 and 11 had nothing placed yet


def test_per_second_never_divides_by_less_than_a_second() -> None:
    assert stats.per_second([5.0, 5.0, 5.0])["average"] == 3.0
    assert stats.per_second([]) == {"n": 0}


def test_share_of_refuses_an_empty_whole() -> None:
    assert stats.share_of(1.0, 4.0) == 0.25
    with pytest.raises(stats.StatsError, match="zero"):
        stats.share_of(1.0, 0.0)
