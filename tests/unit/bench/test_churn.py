"""The churn scenario's arithmetic: busy and away time counted only inside the backlog."""

from __future__ import annotations

from curbside_testbed.bench import churn


def test_spans_count_only_their_part_inside_the_window() -> None:
    spans = [(0.0, 10.0), (15.0, 25.0), (28.0, 40.0), (50.0, 60.0)]
    assert churn._within(spans, 5.0, 30.0) == 5.0 + 10.0 + 2.0


def test_output_hash_is_the_canonical_json_of_the_result() -> None:
    assert churn.output_hash({"b": 1, "a": [1.0]}) == churn.output_hash({"a": [1.0], "b": 1})
    assert churn.output_hash({"a": 1}) != churn.output_hash({"a": 2})
