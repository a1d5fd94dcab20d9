"""Pairing the baseline's evictions with their replacements."""

from __future__ import annotations

from curbside_bench import baseline


def test_each_eviction_gets_the_first_pod_created_after_it() -> None:
    evictions = [(500.0, 100.0), (511.0, 111.0)]  # (evicted at, last sign of life)
    pods = [
        (20.0, 21.0),  # moved long before: a node that blinked NotReady, not a departure
        (500.2, 501.0),
        (511.3, 512.5),
    ]
    reactions, bound = baseline.pair(evictions, pods)
    assert reactions == [401.0, 401.5]
    assert bound == [501.0, 512.5]


def test_an_eviction_without_a_replacement_yet_has_no_reaction() -> None:
    reactions, bound = baseline.pair([(500.0, 100.0), (900.0, 120.0)], [(501.0, 502.0)])
    assert reactions == [402.0]
    assert bound == [502.0]


def test_one_second_of_slack_for_whole_second_timestamps() -> None:
    reactions, _ = baseline.pair([(500.6, 100.0)], [(500.0, 500.9)])
    assert reactions == [400.9]
