"""The churn scenario's arithmetic (busy and away time counted only inside the backlog) and its
workers' retries."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from curbside_bench import churn, stats


def test_spans_count_only_their_part_inside_the_window() -> None:
    spans = [(0.0, 10.0), (15.0, 25.0), (28.0, 40.0), (50.0, 60.0)]
    assert churn._within(spans, 5.0, 30.0) == 5.0 + 10.0 + 2.0


def test_car_time_used_counts_every_place_for_the_whole_backlog() -> None:
    # 4 places for 100 s: a car that left after 40 s and whose place was refilled at 70 s
    # leaves 30 s unused, Curbside's cost, whatever the departed car did meanwhile.
    busy = 3 * 100.0 + 40.0 + 30.0
    assert churn.used_share(busy, 4, 100.0) == 370.0 / 400.0


def test_car_time_used_refuses_an_empty_backlog() -> None:
    with pytest.raises(stats.StatsError):
        churn.used_share(10.0, 4, 0.0)


def test_output_hash_is_the_canonical_json_of_the_result() -> None:
    assert churn.output_hash({"b": 1, "a": [1.0]}) == churn.output_hash({"a": [1.0], "b": 1})
    assert churn.output_hash({"a": 1}) != churn.output_hash({"a": 2})


def test_a_worker_request_is_sent_again_after_a_failed_connection() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            raise httpx.ReadError("connection reset")
        return httpx.Response(204)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://d") as http:
            return await churn._post(http, "/lease", {"car": "car-1"}, tally, {})

    tally = churn.Tally()
    assert asyncio.run(go()).status_code == 204
    assert calls == ["/lease"] * 3
    assert tally.transport_errors == 2


def test_a_worker_request_that_is_answered_is_not_sent_again() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(409, json={"fenced": True})

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://d") as http:
            return await churn._post(http, "/units/1/complete", {}, tally, {})

    tally = churn.Tally()
    assert asyncio.run(go()).status_code == 409
    assert calls == ["/units/1/complete"]
    assert tally.transport_errors == 0


def test_a_workers_first_steps_are_told_in_seconds_after_the_job_was_created() -> None:
    steps = {"car": "car-1", "start": 1002.0, "token": 1003.5, "answer": 1004.25, "status": 200}
    assert churn._relative(steps, 1000.0) == {
        "car": "car-1",
        "start": 2.0,
        "token": 3.5,
        "answer": 4.25,
        "status": 200,
    }


def test_step_to_step_times_come_from_the_workers_timelines() -> None:
    tally = churn.Tally(
        timeline=[
            {"car": "a", "start": 0.0, "token": 1.0, "answer": 1.5, "status": 200, "lease": 1.5},
            {"car": "b", "start": 0.5, "token": 3.0, "answer": 3.25, "status": 204},  # no lease yet
            {"car": "c", "start": 1.0},  # still waiting for its token
        ]
    )
    assert tally.spans("start", "token") == [1.0, 2.5]
    assert tally.spans("token", "answer") == [0.5, 0.25]
    assert tally.spans("start", "lease") == [1.5]
