"""The dispatcher's HTTP API through aiohttp's test client: the happy path, 204, 404, 409
Fenced, 401/403, and a 400 naming the field for every kind of bad request. Each test runs
its own event loop (``asyncio.run``); the clock is a variable the test moves.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from curbside_operator.dispatch import answers, auth, inputs, results
from curbside_operator.dispatch.server import Dispatcher
from curbside_operator.reconcile.placement import pod_name
from tests.support.dispatcher import BASE, Client, Harness, spec
from tests.support.ledger import T0, at


def good_result(unit: int) -> tuple[dict[str, Any], str]:
    result = {"unit": unit, "signals": [{"bin": 3, "snr": 12.5}]}
    return result, results.output_hash(result)


def test_a_unit_is_leased_renewed_and_committed_exactly_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario(client: Client) -> None:
        assert (await client.get("/healthz")).status == 200
        status, lease = await h.post(client, "/lease", {"car": "a", "owner": "x"})
        assert status == 200
        assert lease == {
            "unit": 0,
            "attempt": 1,
            "deadline": "2025-03-03T08:00:30Z",
            "resumed": False,
            "input": {"seed": 7, "unit": 0, "itemsPerUnit": 4, "parameters": {"snrDb": "12"}},
        }
        assert (await h.post(client, "/lease", {"car": "b", "owner": "y"}))[1]["unit"] == 1
        assert await h.post(client, "/lease", {"car": "c", "owner": "z"}) == (204, None)
        h.now = at(20)
        assert await h.post(client, "/units/0/renew", {"car": "a", "attempt": 1}) == (
            200,
            {"deadline": "2025-03-03T08:00:50Z"},
        )
        result, digest = good_result(0)
        body = {"car": "a", "attempt": 1, "outputHash": digest, "result": result}
        status, first = await h.post(client, "/units/0/complete", body)
        assert (status, first["committed"], first["duplicate"]) == (200, True, False)
        assert first["resultRef"] == h.store.path("demo", "seti", 0).as_uri()
        assert h.store.read("demo", "seti", 0) == result
        status, again = await h.post(client, "/units/0/complete", body)
        assert (status, again["duplicate"], again["commitId"]) == (200, True, first["commitId"])

    h.run(scenario)


def test_a_fenced_car_gets_409_and_its_result_is_never_published(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario(client: Client) -> None:
        await h.post(client, "/lease", {"car": "a", "owner": "x"})
        h.ledger.fence_car(h.key, "a", now=at(1))  # what the operator does when car a drives away
        status, lease = await h.post(client, "/lease", {"car": "b", "owner": "y"})
        assert (status, lease["unit"], lease["attempt"]) == (200, 0, 2)
        stale, digest = {"unit": 0, "late": True}, results.output_hash({"unit": 0, "late": True})
        status, answer = await h.post(
            client, "/units/0/complete", {"car": "a", "attempt": 1, "outputHash": digest, "result": stale}
        )
        assert status == 409
        assert answer == {
            "error": "Fenced",
            "message": "attempt was fenced: its car left or went silent",
            "unit": 0,
            "attempt": 1,
        }
        assert not h.store.published("demo", "seti", 0)
        assert (await h.post(client, "/units/0/renew", {"car": "a", "attempt": 1}))[0] == 409
        result, digest = good_result(0)
        body = {"car": "b", "attempt": 2, "outputHash": digest, "result": result}
        assert (await h.post(client, "/units/0/complete", body))[0] == 200
        assert h.store.read("demo", "seti", 0) == result

    h.run(scenario)


def test_release_gives_the_unit_back_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario(client: Client) -> None:
        await h.post(client, "/lease", {"car": "a", "owner": "x"})
        assert await h.post(client, "/units/0/release", {"car": "a", "attempt": 1}) == (
            200,
            {"released": True},
        )
        assert await h.post(client, "/units/0/release", {"car": "a", "attempt": 1}) == (
            200,
            {"released": False},
        )
        status, lease = await h.post(client, "/lease", {"car": "b", "owner": "y"})
        assert (status, lease["unit"], lease["attempt"]) == (200, 0, 2)

    h.run(scenario)


COMPLETE = "/units/0/complete"
GOOD = {"car": "a", "attempt": 1, "outputHash": "0" * 64, "result": {}}
BAD_REQUESTS = [
    ("/lease", {"owner": "x"}, "car"),
    ("/lease", {"car": "a", "owner": 7}, "owner"),
    ("/lease", {"car": "", "owner": "x"}, "car"),
    ("/lease", {"car": "a", "owner": "x", "colour": "red"}, "colour"),
    ("/lease", "not json", "body"),
    ("/lease", ["a", "x"], "body"),
    ("/units/0/renew", {"car": "a", "attempt": "1"}, "attempt"),
    ("/units/0/renew", {"car": "a", "attempt": 0}, "attempt"),
    ("/units/0/renew", {"car": "a", "attempt": True}, "attempt"),
    ("/units/zero/renew", {"car": "a", "attempt": 1}, "unit"),
    ("/units/-1/renew", {"car": "a", "attempt": 1}, "unit"),
    (COMPLETE, {**GOOD, "outputHash": "ABC"}, "outputHash"),
    (COMPLETE, {**GOOD, "result": [1, 2]}, "result"),
    (COMPLETE, {k: v for k, v in GOOD.items() if k != "result"}, "result"),
    (COMPLETE, GOOD, "outputHash"),  # well formed, but not the hash of the result
    *(
        (COMPLETE, {**GOOD, "outputHash": results.output_hash(result), "result": result}, "result.unit")
        for result in ({}, {"unit": "0"}, {"unit": True}, {"unit": None})  # a result names its unit
    ),
    ("/units/0/release", {"car": "a", "attempt": 1, "error": "x" * 2000}, "error"),
]


@pytest.mark.parametrize(("path", "body", "field"), BAD_REQUESTS)
def test_a_bad_request_is_400_naming_the_field(tmp_path: Path, path: str, body: Any, field: str) -> None:
    h = Harness(tmp_path)

    async def scenario(client: Client) -> None:
        status, answer = await h.post(client, path, body, car="a")
        assert status == 400, answer
        assert (answer["error"], answer["field"]) == ("BadRequest", field)
        assert answer["message"].startswith(f"{field}: ")

    h.run(scenario)


def test_tokens_bind_a_car_to_a_job(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario(client: Client) -> None:
        url, body = f"{BASE}/lease", json.dumps({"car": "a", "owner": "x"})
        for missing in (
            {},
            {"Authorization": "Basic abc"},
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer forged"},
        ):
            response = await client.post(url, data=body, headers=missing)
            assert (response.status, (await response.json())["error"]) == (401, "Unauthorized")
        wrong = {
            "car b's token": h.auth("b"),
            "another job's pod": h.auth("a", job="other"),
            "another namespace's pod": h.auth("a", namespace="elsewhere"),
            "a pod named for car a on car b": h.auth("a", node="b"),
        }
        for why, headers in wrong.items():
            response = await client.post(url, data=body, headers=headers)
            answer = await response.json()
            assert (response.status, answer["error"]) == (403, "Forbidden"), why
            assert "the token is pod " in answer["message"], answer
        assert (await client.post(url, data=body, headers=h.auth("a"))).status == 200
        renew = json.dumps({"car": "a", "attempt": 1})
        response = await client.post(f"{BASE}/units/0/renew", data=renew, headers=h.auth("b"))
        assert response.status == 403  # car b cannot keep car a's unit alive either
        assert h.ledger.live(h.key)[0].car == "a"

    h.run(scenario)


def test_a_token_that_cannot_be_checked_now_is_503_with_retry_after(tmp_path: Path) -> None:
    class Down:
        async def authenticate(self, token: str) -> auth.Identity:
            raise auth.Unavailable("the API server does not answer")

    h = Harness(tmp_path, authenticator=Down())

    async def scenario(client: Client) -> None:
        response = await client.post(f"{BASE}/lease", json={"car": "a", "owner": "x"}, headers=h.auth("a"))
        assert (response.status, response.headers["Retry-After"]) == (503, "5")
        assert (await response.json())["error"] == "Unavailable"
        assert h.ledger.live(h.key) == []  # never an accept

    h.run(scenario)


def test_unknown_jobs_units_and_routes_are_404(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario(client: Client) -> None:
        response = await client.post(
            "/v1/jobs/demo/nope/lease", json={"car": "a", "owner": "x"}, headers=h.auth("a")
        )
        assert (response.status, (await response.json())["error"]) == (404, "NotFound")
        assert (await h.post(client, "/units/2/renew", {"car": "a", "attempt": 1}))[0] == 404
        assert (await client.get("/v1/nothing")).status == 404
        h.dispatcher.unregister_job("demo", "seti")
        assert (await h.post(client, "/lease", {"car": "a", "owner": "x"}))[0] == 404

    h.run(scenario)


def test_registering_refuses_jobs_that_cannot_run(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    dataset = {"dataset": {"uri": "s3://bucket/items.txt", "itemsPerUnit": 10}}
    with pytest.raises(inputs.UnsplittableInput) as unknown:
        h.dispatcher.register_job("demo", "d", "u", spec(input=dataset))
    assert unknown.value.field == "spec.input.dataset.uri"
    with pytest.raises(inputs.UnsplittableInput) as empty:
        h.dispatcher.register_job("demo", "d", "u", spec(input=dataset), dataset_items=0)
    assert "no items" in empty.value.message
    assert h.dispatcher.register_job("demo", "d", "u", spec(input=dataset), dataset_items=25) == "demo/d/u"
    assert h.ledger.summary("demo/d/u").total == 3
    plain = Dispatcher(h.ledger, authenticator=auth.StaticAuthenticator(), pod_name=pod_name)
    with pytest.raises(results.UnsupportedOutput) as output:
        plain.register_job("demo", "o", "u", spec(output={"uri": "s3://bucket/results"}))
    assert output.value.field == "spec.output.uri"
    plain.close()
    h.dispatcher.close()
    h.ledger.close()


def test_a_commit_whose_publish_was_cut_short_is_published_on_register(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    lease = h.ledger.lease(h.key, car="a", owner="x", now=T0)
    assert lease is not None
    result, digest = good_result(0)
    # The operator died after the ledger committed and before the file was renamed into place.
    ref = h.store.stage("demo", "seti", 0, result=result, output_hash=digest)
    h.ledger.complete(h.key, 0, 1, car="a", output_hash=digest, result_ref=ref, now=T0)
    assert not h.store.published("demo", "seti", 0)
    h.dispatcher.register_job("demo", "seti", "uid-1", spec())
    assert h.store.read("demo", "seti", 0) == result
    h.dispatcher.close()
    h.ledger.close()


def test_a_worker_that_hangs_up_mid_request_is_no_error(caplog: pytest.LogCaptureFixture) -> None:
    async def hung_up(request: web.Request) -> web.StreamResponse:
        raise ConnectionResetError("Connection lost")

    request = make_mocked_request("POST", "/v1/jobs/demo/seti/lease")
    response = asyncio.run(answers.errors(request, hung_up))
    assert response.status == 400
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]
