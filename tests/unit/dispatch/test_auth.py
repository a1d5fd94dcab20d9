"""Dispatcher authentication without a cluster: what a TokenReview proves, who may act for which
car, and the authenticator around the review (cache until shortly before expiry, bounded, one
review for concurrent requests, an API server that cannot answer is 503 and never an accept).
The review itself against a real API server is in tests/cluster/jobs/test_dispatcher_auth.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from curbside_operator.dispatch import auth

NOW = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
AUDIENCE = "curbside-dispatcher"
POD_A = auth.Identity("science", "default", "seti-car-a", "uid-a", "car-a")


def jwt(exp: datetime, subject: str = "system:serviceaccount:science:default") -> str:
    """A JWT-shaped token (the signature is the API server's business, never checked here)."""

    def part(value: Mapping[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return ".".join([part({"alg": "RS256"}), part({"exp": int(exp.timestamp()), "sub": subject}), "sig"])


def review(
    *,
    authenticated: bool = True,
    username: str = "system:serviceaccount:science:default",
    audiences: Sequence[str] = (AUDIENCE,),
    pod: str | None = "seti-car-a",
    uid: str | None = "uid-a",
    node: str | None = "car-a",
    error: str = "",
) -> dict[str, Any]:
    """A TokenReview status as the API server writes it for a pod-bound token."""
    extra = {
        key: [value]
        for key, value in ((auth.POD_NAME, pod), (auth.POD_UID, uid), (auth.NODE_NAME, node))
        if value is not None
    }
    status: dict[str, Any] = {"authenticated": authenticated, "audiences": list(audiences)}
    if authenticated:
        status["user"] = {"username": username, "groups": ["system:serviceaccounts"], "extra": extra}
    if error:
        status["error"] = error
    return status


# -- what a review proves ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (review(authenticated=False, error="token has expired"), auth.Unauthenticated, "token has expired"),
        (review(authenticated=False), auth.Unauthenticated, "not authenticated"),
        (review(audiences=["https://kubernetes.default.svc"]), auth.Unauthenticated, "not meant for"),
        (review(audiences=[]), auth.Unauthenticated, "not meant for"),
        (review(username="alice"), auth.Forbidden, "alice is not a ServiceAccount"),
        (review(username="system:serviceaccount:science"), auth.Forbidden, "not a ServiceAccount"),
        (review(pod=None), auth.Forbidden, "not bound to a pod"),
        (review(uid=None), auth.Forbidden, "not bound to a pod"),
        (review(node=None), auth.Forbidden, "names no node"),
    ],
)
def test_a_review_that_proves_no_pod_on_a_car_is_refused(
    status: dict[str, Any], kind: type[auth.AuthError], words: str
) -> None:
    with pytest.raises(kind, match=words) as caught:
        auth.identity_from_review(status, audience=AUDIENCE)
    assert caught.value.status == (401 if kind is auth.Unauthenticated else 403)


def test_a_pod_bound_token_proves_its_pod_and_car() -> None:
    assert auth.identity_from_review(review(), audience=AUDIENCE) == POD_A
    assert str(POD_A) == "pod science/seti-car-a on car car-a"


# -- who may act for which car --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("namespace", "job", "car", "pod", "words"),
    [
        ("science", "seti", "car-a", "seti-car-a", None),
        ("science", "seti", "car-b", "seti-car-b", "may not act for car car-b"),
        ("other", "seti", "car-a", "seti-car-a", "not of a pod in job other/seti's namespace"),
        (
            "science",
            "minilm",
            "car-a",
            "minilm-car-a",
            "job science/minilm's pod on car car-a is minilm-car-a",
        ),
    ],
)
def test_a_token_acts_only_for_its_own_pods_job_and_car(
    namespace: str, job: str, car: str, pod: str, words: str | None
) -> None:
    if words is None:
        auth.authorize(POD_A, namespace=namespace, job=job, car=car, pod=pod)
        return
    with pytest.raises(auth.Forbidden, match=words):
        auth.authorize(POD_A, namespace=namespace, job=job, car=car, pod=pod)


def test_a_pod_named_like_another_cars_pod_is_still_on_its_own_car() -> None:
    impostor = auth.Identity("science", "default", "seti-car-b", "uid-x", "car-a")
    with pytest.raises(auth.Forbidden, match="on car car-a: it may not act for car car-b"):
        auth.authorize(impostor, namespace="science", job="seti", car="car-b", pod="seti-car-b")


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer   ", "Basic abc", "bearer"])
def test_a_missing_bearer_token_is_401(header: str) -> None:
    with pytest.raises(auth.Unauthenticated):
        auth.bearer(header)
    assert auth.bearer("bearer  abc ") == "abc"


# -- the authenticator around the review ------------------------------------------------------------
class Reviews:
    """The API server's side: answers ``status`` (or raises ``fail``), counting calls."""

    def __init__(self, status: dict[str, Any] | None = None) -> None:
        self.status, self.calls, self.fail = status or review(), 0, None
        self.gate: asyncio.Event | None = None

    async def __call__(self, token: str, audiences: Sequence[str]) -> Mapping[str, Any]:
        assert list(audiences) == [AUDIENCE]
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.status


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def authenticator(reviews: Reviews, clock: Clock, **kwargs: Any) -> auth.TokenReviewAuthenticator:
    return auth.TokenReviewAuthenticator(reviews, audience=AUDIENCE, clock=clock, **kwargs)


def test_a_reviewed_token_is_cached_until_shortly_before_it_expires() -> None:
    reviews, clock = Reviews(), Clock()
    checker = authenticator(reviews, clock, margin=timedelta(seconds=30))
    token = jwt(NOW + timedelta(minutes=10))

    async def main() -> None:
        for _ in range(5):
            assert await checker.authenticate(token) == POD_A
        assert reviews.calls == 1
        clock.now = NOW + timedelta(minutes=9, seconds=29)
        await checker.authenticate(token)
        assert reviews.calls == 1
        clock.now = NOW + timedelta(minutes=9, seconds=31)  # within the margin: asked again
        await checker.authenticate(token)
        assert reviews.calls == 2

    asyncio.run(main())


def test_garbage_and_expired_tokens_are_401_without_asking_the_api_server() -> None:
    reviews, clock = Reviews(), Clock()
    checker = authenticator(reviews, clock)

    async def main() -> None:
        for token in ("garbage", "a.b.c", jwt(NOW - timedelta(seconds=1)), "x." + "e30" + ".y"):
            with pytest.raises(auth.Unauthenticated):
                await checker.authenticate(token)
        assert reviews.calls == 0

    asyncio.run(main())


def test_refusals_are_not_cached_and_the_cache_is_bounded() -> None:
    reviews, clock = Reviews(review(authenticated=False, error="pod not found")), Clock()
    checker = authenticator(reviews, clock, max_entries=3)

    async def main() -> None:
        token = jwt(NOW + timedelta(minutes=10))
        for _ in range(2):
            with pytest.raises(auth.Unauthenticated, match="pod not found"):
                await checker.authenticate(token)
        assert (reviews.calls, len(checker)) == (2, 0)
        reviews.status = review()
        tokens = [jwt(NOW + timedelta(minutes=10, seconds=s)) for s in range(5)]
        for each in tokens:
            await checker.authenticate(each)
        assert len(checker) == 3
        calls = reviews.calls
        await checker.authenticate(tokens[-1])  # recent: still cached
        await checker.authenticate(tokens[0])  # the oldest went first: asked again
        assert reviews.calls == calls + 1

    asyncio.run(main())


def test_concurrent_requests_with_one_token_share_one_review() -> None:
    reviews, clock = Reviews(), Clock()
    checker = authenticator(reviews, clock)

    async def main() -> None:
        reviews.gate = asyncio.Event()
        token = jwt(NOW + timedelta(minutes=10))
        waiting = [asyncio.ensure_future(checker.authenticate(token)) for _ in range(20)]
        await asyncio.sleep(0.01)
        reviews.gate.set()
        assert await asyncio.gather(*waiting) == [POD_A] * 20
        assert reviews.calls == 1

    asyncio.run(main())


def test_an_api_server_that_cannot_answer_is_503_never_an_accept() -> None:
    reviews, clock = Reviews(), Clock()
    checker = authenticator(reviews, clock, timeout_s=0.05)
    token = jwt(NOW + timedelta(minutes=10))

    async def main() -> None:
        reviews.fail = auth.Unavailable("connection refused")
        with pytest.raises(auth.Unavailable) as down:
            await checker.authenticate(token)
        assert (down.value.status, down.value.retry_after) == (503, 5)
        reviews.fail, reviews.gate = None, asyncio.Event()  # never answers
        with pytest.raises(auth.Unavailable, match="did not answer a TokenReview in 0.05s"):
            await checker.authenticate(token)
        assert len(checker) == 0
        reviews.gate.set()
        assert await checker.authenticate(token) == POD_A  # back: accepted once reviewed

    asyncio.run(main())


def test_static_tokens_are_for_tests_only_and_unknown_ones_are_401() -> None:
    static = auth.StaticAuthenticator()
    token = static.issue(POD_A)

    async def main() -> None:
        assert await static.authenticate(token) == POD_A
        with pytest.raises(auth.Unauthenticated):
            await static.authenticate(token + "x")

    asyncio.run(main())
