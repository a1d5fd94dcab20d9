"""Attacks a hostile car can make on the dispatcher, each made through its real HTTP API.

Cars belong to strangers, so every request is hostile until shown otherwise. Each test here
is one attack a review reproduced, and fails if the protection against it goes: one number
poisoning a unit for every honest car (``results.within``, fencing before comparison), bodies
too deep or too large (``dispatch/bodies.py``), filling the operator's disk through the
staging folder (``dispatch/staging.py``), stalling the event loop with a large result
(``server.Dispatcher``'s parsing pool), and a deleted pod's token that keeps working
(``auth.TokenReviewAuthenticator.forget_pod``, wired by ``controllers/jobs.py``).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from curbside_operator.controllers import job_state
from curbside_operator.controllers import jobs as jobs_runtime
from curbside_operator.dispatch import auth, bodies, results, staging
from curbside_operator.facts import CarFacts
from curbside_operator.reconcile.placement import pod_name
from tests.support.dispatcher import BASE, TRUST, Client, Harness, TrustHarness
from tests.support.ledger import at


def complete_body(car: str, attempt: int, result: dict[str, Any]) -> dict[str, Any]:
    return {"car": car, "attempt": attempt, "outputHash": results.output_hash(result), "result": result}


def staged_files(h: Harness, job: str) -> list[Path]:
    folder = h.store.folder("demo", job) / results.STAGING
    return sorted(folder.iterdir()) if folder.exists() else []


# -- 1. one number poisons a unit ----------------------------------------------------------------
def test_a_number_no_float_can_hold_does_not_poison_the_unit_for_honest_cars(tmp_path: Path) -> None:
    """The cheater's ``10**400`` used to make every honest float result raise OverflowError in
    the tolerance comparison (HTTP 500, retried forever, the cheater never judged). Now it is a
    mismatch: the honest cars agree, commit, and outvote (quarantine) the cheater."""
    h = TrustHarness(tmp_path)
    h.fleet.update(cheat=CarFacts(owner="o1"), b=CarFacts(owner="o2"), c=CarFacts(owner="o3"))

    async def scenario(client: Client) -> None:
        status, answer = await h.finish(client, "cheat", {"x": 10**400})
        assert (status, answer["committed"]) == (200, False), answer
        status, answer = await h.finish(client, "b", {"x": 1.0})
        assert (status, answer["committed"]) == (200, False), answer
        status, answer = await h.finish(client, "c", {"x": 1.001})
        assert (status, answer["committed"]) == (200, True), answer
        assert h.store.read("demo", "trust", 0) == {"unit": 0, "x": 1.0}
        status, answer = await h.call(client, "/lease", {"car": "cheat", "owner": "o1"})
        assert (status, answer["error"]) == (403, "Quarantined")

    h.run(scenario)


def test_an_honest_car_past_its_deadline_is_fenced_before_any_comparison(tmp_path: Path) -> None:
    """Liveness first: a late result after a poisoned one is a 409, nothing compared or staged."""
    h = TrustHarness(tmp_path)
    h.fleet.update(cheat=CarFacts(owner="o1"), late=CarFacts(owner="o2"))
    compared: list[object] = []
    original = results.within

    def spy(a: Any, b: Any, tolerance: float) -> bool:
        compared.append(a)
        return original(a, b, tolerance)

    async def scenario(client: Client) -> None:
        status, _ = await h.finish(client, "cheat", {"x": 10**400})
        assert status == 200
        status, lease = await h.call(client, "/lease", {"car": "late", "owner": "o2"})
        assert (status, lease["unit"]) == (200, 0)
        h.now = at(31)  # past the 30 s deadline
        body = complete_body("late", lease["attempt"], {"unit": 0, "x": 1.0})
        status, answer = await h.call(client, "/units/0/complete", body)
        assert (status, answer["error"]) == (409, "Fenced"), answer
        assert compared == []
        assert [p.name.split("-")[0] for p in staged_files(h, "trust")] == ["0"]  # the cheater's only

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(results, "within", spy)
        h.run(scenario)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_as_not_json(tmp_path: Path, literal: str) -> None:
    h = TrustHarness(tmp_path)
    h.fleet.update(a=CarFacts(owner="o1"))

    async def scenario(client: Client) -> None:
        status, lease = await h.call(client, "/lease", {"car": "a", "owner": "o1"})
        text = '{"car": "a", "attempt": %d, "outputHash": "%s", "result": {"unit": 0, "x": %s}}'
        data = text % (lease["attempt"], "0" * 64, literal)
        response = await client.post(f"{TRUST}/units/0/complete", data=data, headers=h.auth("a", job="trust"))
        answer = await response.json()
        assert (response.status, answer["error"], answer["field"]) == (400, "BadRequest", "body")
        assert literal.lstrip("-") in answer["message"]

    h.run(scenario)


def test_within_never_raises_on_what_cars_send() -> None:
    for bad in (10**400, -(10**400), float("nan"), float("inf"), float("-inf")):
        assert results.within({"x": bad}, {"x": 1.0}, 0.01) is False
        assert results.within({"x": 1.0}, {"x": bad}, 0.01) is False
    assert results.within({"x": 10**400}, {"x": 10**400}, 0.01) is True  # exact ints stay exact
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    assert results.within(deep, deep, 0.01) is False  # too deep to walk: a mismatch, not a crash


# -- 2. depth and size limits --------------------------------------------------------------------
@pytest.mark.parametrize("levels", [bodies.MAX_DEPTH + 1, 5_000])
def test_a_result_nested_too_deep_is_a_400_naming_the_problem(tmp_path: Path, levels: int) -> None:
    h = Harness(tmp_path)

    async def scenario(client: Client) -> None:
        status, lease = await h.post(client, "/lease", {"car": "a", "owner": "x"})
        assert status == 200
        nested = "[" * levels + "]" * levels
        envelope = {"car": "a", "attempt": 1, "outputHash": "0" * 64, "result": {"unit": 0, "x": "NESTED"}}
        data = json.dumps(envelope).replace('"NESTED"', nested)
        response = await client.post(f"{BASE}/units/0/complete", data=data, headers=h.auth("a"))
        answer = await response.json()
        assert (response.status, answer["error"], answer["field"]) == (400, "BadRequest", "body"), answer
        assert f"nested deeper than {bodies.MAX_DEPTH} levels" in answer["message"]
        assert staged_files(h, "seti") == []

    h.run(scenario)


def test_brackets_inside_strings_do_not_count_as_depth(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario(client: Client) -> None:
        await h.post(client, "/lease", {"car": "a", "owner": "x"})
        result = {"unit": 0, "text": "[{" * 10_000 + '"\\"['}
        status, answer = await h.post(client, "/units/0/complete", complete_body("a", 1, result))
        assert (status, answer["committed"]) == (200, True), answer

    h.run(scenario)


def test_bodies_over_their_size_limit_are_413(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def scenario(client: Client) -> None:
        big = json.dumps({"car": "a", "owner": "x" * bodies.MAX_SMALL_BODY})
        response = await client.post(f"{BASE}/lease", data=big, headers=h.auth("a"))
        answer = await response.json()
        assert (response.status, answer["error"], answer["field"]) == (413, "TooLarge", "body")
        await h.post(client, "/lease", {"car": "a", "owner": "x"})
        result = {"unit": 0, "pad": "x" * bodies.MAX_RESULT_BODY}
        response = await client.post(
            f"{BASE}/units/0/complete", data=json.dumps(complete_body("a", 1, result)), headers=h.auth("a")
        )
        answer = await response.json()
        assert (response.status, answer["error"]) == (413, "TooLarge"), answer
        assert f"at most {bodies.MAX_RESULT_BODY} bytes" in answer["message"]

        async def chunks() -> Any:  # no Content-Length: the limit holds while reading
            for _ in range(bodies.MAX_SMALL_BODY // 1024 + 2):
                yield b" " * 1024

        response = await client.post(f"{BASE}/lease", data=chunks(), headers=h.auth("a"))
        assert (response.status, (await response.json())["error"]) == (413, "TooLarge")

    h.run(scenario)


# -- 3. starving others through the staging folder -----------------------------------------------
def test_nothing_is_staged_for_a_unit_the_car_does_not_hold(tmp_path: Path) -> None:
    """Any pod's token used to stage 16 MiB for any unit number; now the lease comes first:
    nothing is written, not even for a moment."""
    h = Harness(tmp_path)
    written: list[int] = []
    stage = h.store.stage

    def counted(namespace: str, name: str, unit: int, **kwargs: Any) -> str:
        written.append(unit)
        return stage(namespace, name, unit, **kwargs)

    h.store.stage = counted  # type: ignore[method-assign]

    async def scenario(client: Client) -> None:
        await h.post(client, "/lease", {"car": "a", "owner": "x"})  # car a holds unit 0 only
        for unit, attempt in ((1, 1), (0, 2), (7, 1), (999_999_999, 1)):
            result = {"unit": unit, "pad": "x" * 100_000}
            status, answer = await h.post(
                client, f"/units/{unit}/complete", complete_body("a", attempt, result)
            )
            assert status in (404, 409), answer
        status, _ = await h.post(client, "/units/0/complete", complete_body("b", 1, {"unit": 0}))
        assert status == 409  # car b's token, car a's attempt
        assert (written, staged_files(h, "seti")) == ([], [])
        status, _ = await h.post(client, "/units/0/complete", complete_body("a", 1, {"unit": 0}))
        assert (status, written) == (200, [0])  # the holder's result is staged

    h.run(scenario)


def test_a_car_may_keep_only_so_many_results_waiting(tmp_path: Path) -> None:
    """Results waiting for a quorum stay staged; one car may not pile up more than its quota."""
    limit = staging.MAX_FILES_PER_CAR
    h = TrustHarness(tmp_path, units=limit + 2)
    h.fleet.update(a=CarFacts(owner="o1"), b=CarFacts(owner="o2"))

    async def scenario(client: Client) -> None:
        for unit in range(limit):
            status, answer = await h.finish(client, "a", {"x": unit})
            assert (status, answer["committed"]) == (200, False), (unit, answer)
        status, answer = await h.finish(client, "a", {"x": "one too many"})
        assert (status, answer["error"]) == (429, "QuotaExceeded"), answer
        assert len(staged_files(h, "trust")) == limit
        status, answer = await h.finish(client, "b", {"x": 0})  # unit 0 commits: a's file is published
        assert (status, answer["committed"]) == (200, True), answer
        status, lease = await h.call(client, "/lease", {"car": "a", "owner": "o1"})
        assert status == 200, lease
        body = complete_body("a", lease["attempt"], {"unit": lease["unit"], "x": "now it fits"})
        status, answer = await h.call(client, f"/units/{lease['unit']}/complete", body)
        assert status == 200, answer

    h.run(scenario)


def test_staged_files_nobody_needs_are_removed_at_once_and_at_start(tmp_path: Path) -> None:
    h = TrustHarness(tmp_path, replicas=3, quorum=2)
    h.fleet.update(a=CarFacts(owner="o1"), b=CarFacts(owner="o2"), c=CarFacts(owner="o3"))

    async def scenario(client: Client) -> None:
        assert (await h.finish(client, "a", {"x": 1.0}))[0] == 200
        assert (await h.finish(client, "b", {"x": 50.0}))[0] == 200
        assert len(staged_files(h, "trust")) == 2  # both wait for a quorum
        status, answer = await h.finish(client, "c", {"x": 1.001})  # counts as a's output
        assert (status, answer["committed"]) == (200, True)
        assert staged_files(h, "trust") == []

    h.run(scenario)
    # What a crash left behind: a result no submission waits for, and one for no unit at all.
    for unit in (1, 1_000):
        h.store.stage("demo", "trust", unit, result={"u": unit}, output_hash=results.output_hash({"u": unit}))
    assert len(staged_files(h, "trust")) == 2
    again = TrustHarness(tmp_path, replicas=3, quorum=2)  # an operator restart: the job registers again
    assert staged_files(again, "trust") == []
    again.dispatcher.close()
    again.ledger.close()


def test_a_result_refused_after_it_was_staged_leaves_no_file(tmp_path: Path) -> None:
    """The car drives off (is fenced) while its result is being staged: the ledger refuses it,
    and its staged file goes at once, not when the unit is decided (it may never be)."""
    h = Harness(tmp_path)
    stage = h.store.stage

    def stage_then_fence(namespace: str, name: str, unit: int, **kwargs: Any) -> str:
        ref = stage(namespace, name, unit, **kwargs)
        h.ledger.fence_car(h.key, "a", now=at(1))  # what the operator does when car a drives away
        return ref

    h.store.stage = stage_then_fence  # type: ignore[method-assign]

    async def scenario(client: Client) -> None:
        await h.post(client, "/lease", {"car": "a", "owner": "x"})
        status, answer = await h.post(client, "/units/0/complete", complete_body("a", 1, {"unit": 0}))
        assert (status, answer["error"]) == (409, "Fenced"), answer
        assert staged_files(h, "seti") == []
        assert h.dispatcher._quota.charged("a") == (0, 0)

    h.run(scenario)


# -- 4. stalling the event loop ------------------------------------------------------------------
def test_a_small_request_is_answered_while_a_large_result_is_being_parsed(tmp_path: Path) -> None:
    """The large body's parse is held open; a health check must be answered meanwhile (parsed
    on the event loop, as before, it would wait). The pool is threads here so the parse can be
    held; the operator's processes run in ``test_a_large_result_commits_through_...``."""
    h = Harness(tmp_path, parsers=concurrent.futures.ThreadPoolExecutor(2))
    entered, release, parsed = threading.Event(), threading.Event(), threading.Event()
    original = bodies.parse

    def held(data: bytes, model: Any, *, limit: int) -> Any:
        if len(data) >= bodies.OFFLOAD_BYTES:
            entered.set()
            release.wait(5)  # on the event loop (the old way) this blocks the loop for 5 s
            try:
                return original(data, model, limit=limit)
            finally:
                parsed.set()
        return original(data, model, limit=limit)

    async def scenario(client: Client) -> None:
        await h.post(client, "/lease", {"car": "a", "owner": "x"})
        result = {"unit": 0, "pad": "x" * (2 * 1024 * 1024)}
        big = asyncio.ensure_future(h.post(client, "/units/0/complete", complete_body("a", 1, result)))
        try:
            assert await asyncio.to_thread(entered.wait, 10)
            health = await client.get("/healthz")
            assert health.status == 200
            assert not parsed.is_set(), "the health check was answered only after the large body's parse"
        finally:
            release.set()
        status, answer = await big
        assert (status, answer["committed"]) == (200, True)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bodies, "parse", held)
        h.run(scenario)


def test_a_large_result_commits_through_the_process_pool(tmp_path: Path) -> None:
    """The operator's parsing pool is processes: a large result, compared within a tolerance with
    another large one, commits through it, and a too-deep one is refused there."""
    h = TrustHarness(tmp_path)
    h.fleet.update(a=CarFacts(owner="o1"), b=CarFacts(owner="o2"))
    values = [i * 0.5 for i in range(40_000)]  # about 400 KiB of JSON: parsed off the event loop

    async def scenario(client: Client) -> None:
        status, answer = await h.finish(client, "a", {"v": values})
        assert (status, answer["committed"]) == (200, False), answer
        status, answer = await h.finish(client, "b", {"v": [v + 0.001 for v in values]})
        assert (status, answer["committed"]) == (200, True), answer
        assert h.store.read("demo", "trust", 0)["v"] == values
        status, lease = await h.call(client, "/lease", {"car": "a", "owner": "o1"})
        deep: Any = values
        for _ in range(bodies.MAX_DEPTH):
            deep = [deep]
        body = complete_body("a", lease["attempt"], {"unit": lease["unit"], "v": deep})
        status, answer = await h.call(client, f"/units/{lease['unit']}/complete", body)
        assert (status, answer["field"]) == (400, "body"), answer

    h.run(scenario)


# -- 5. a deleted pod's token --------------------------------------------------------------------
def jwt(exp: float) -> str:
    def part(claims: Mapping[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'exp': exp})}.signature"


@pytest.mark.parametrize("signal", ["watch event", "relist"])
def test_a_deleted_pods_token_is_refused_at_once_not_when_its_review_expires(
    tmp_path: Path, signal: str
) -> None:
    """The pod watch sees the pod deleted (an event with its uid, or a relist that no longer has
    it); the job loop's hook makes the dispatcher forget its cached review. After an event the
    token is refused even by a review that still says yes (an API server slow to notice)."""
    pod, uid = pod_name("seti", "a"), "uid-a"
    reviews: list[str] = []
    alive = [True]

    async def review(token: str, audiences: Sequence[str]) -> Mapping[str, Any]:
        reviews.append(token)
        if not alive[0]:
            return {"authenticated": False, "error": f"pod {pod} not found"}
        extra = {auth.POD_NAME: [pod], auth.POD_UID: [uid], auth.NODE_NAME: ["a"]}
        user = {"username": "system:serviceaccount:demo:default", "extra": extra}
        return {"authenticated": True, "audiences": list(audiences), "user": user}

    holder: list[Harness] = []
    authenticator = auth.TokenReviewAuthenticator(review, audience="curbside", clock=lambda: holder[0].now)
    h = Harness(tmp_path, authenticator=authenticator)
    holder.append(h)
    state = job_state.JobState()
    config = SimpleNamespace(write_concurrency=1)
    jobs_runtime.JobLoop(state, None, h.dispatcher, None, config)  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {jwt(at(600).timestamp())}"}

    async def scenario(client: Client) -> None:
        response = await client.post(f"{BASE}/lease", json={"car": "a", "owner": "x"}, headers=headers)
        assert response.status == 200, await response.text()
        renew = {"car": "a", "attempt": 1}
        response = await client.post(f"{BASE}/units/0/renew", json=renew, headers=headers)
        assert (response.status, len(reviews)) == (200, 1)  # cached
        if signal == "watch event":
            state.pod_event("DELETED", {"metadata": {"namespace": "demo", "name": pod, "uid": uid}})
        else:
            alive[0] = False
            state.pod_gone(f"demo/{pod}")
        for path, body in (("/lease", {"car": "a", "owner": "x"}), ("/units/0/renew", renew)):
            response = await client.post(f"{BASE}{path}", json=body, headers=headers)
            answer = await response.json()
            assert (response.status, answer["error"]) == (401, "Unauthorized"), answer
            if signal == "watch event":
                assert f"pod demo/{pod} was deleted" in answer["message"]

    h.run(scenario)
