"""Who is calling the dispatcher: a worker proves which pod, and so which car, it runs as.

Why this exists: cars belong to members of the public, so nothing a car says about itself
counts, and no secret the operator holds may sit on a car. Each inference pod mounts a
projected ServiceAccount token for the dispatcher's audience (``reconcile.pods``), bound to
the pod (the kubelet rotates it). The dispatcher asks the API server about each token with a
TokenReview, which checks the signature, expiry, audience and that the bound pod still
exists, and answers with the pod's namespace, name, uid and node. From that:

- ``identity_from_review`` turns a TokenReview status into an ``Identity`` (pure);
- ``authorize`` checks that the identity may act for (job, car): the token's pod is that
  job's pod on that car, in the job's namespace, and runs on that car (pure);
- ``TokenReviewAuthenticator`` reviews tokens through an injected call (the operator wires
  ``kube.tokenreview``), caches positive answers until shortly before the token expires (in a
  bounded LRU), shares one review between concurrent requests with the same token, and turns
  an API server that cannot answer into ``Unavailable`` (503), never into an accept, and
  forgets a pod's tokens the moment the operator sees the pod deleted (``forget_pod``, called
  from the pod watch through ``controllers.job_state``): a deleted pod's token is refused at
  once, not when its cached review runs out;
- ``StaticAuthenticator`` hands out tokens in-process, for unit tests and benchmarks that run
  the dispatcher without Kubernetes. The operator never builds one: no setting selects it.

Outcomes are ``AuthError``s with the HTTP status they mean: 401 ``Unauthorized`` (no token, not
a token, expired, wrong audience, pod gone), 403 ``Forbidden`` (a valid token acting for
another car or job), 503 ``Unavailable`` (no review possible now; ``retry_after`` seconds).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import dataclasses
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

log = logging.getLogger(__name__)

POD_NAME, POD_UID, NODE_NAME = (
    f"authentication.kubernetes.io/{key}" for key in ("pod-name", "pod-uid", "node-name")
)
SA_PREFIX = "system:serviceaccount:"


class AuthError(Exception):
    """A request that is not let through; ``status`` and ``kind`` are its HTTP answer."""

    status, kind, retry_after = 401, "Unauthorized", 0


class Unauthenticated(AuthError):
    """No usable token: missing, malformed, expired, for another audience, or its pod is gone."""


class Forbidden(AuthError):
    """A valid token that may not act for this car or job."""

    status, kind = 403, "Forbidden"


class Unavailable(AuthError):
    """The token cannot be checked now (the API server does not answer): try again later."""

    status, kind, retry_after = 503, "Unavailable", 5


@dataclasses.dataclass(frozen=True)
class Identity:
    """What a pod-bound ServiceAccount token proves: the pod, its namespace and its node (car)."""

    namespace: str
    service_account: str
    pod: str
    pod_uid: str
    node: str

    def __str__(self) -> str:
        return f"pod {self.namespace}/{self.pod} on car {self.node}"


class Authenticator(Protocol):
    """Turns a bearer token into an ``Identity`` or raises an ``AuthError``."""

    async def authenticate(self, token: str) -> Identity: ...


Review = Callable[[str, Sequence[str]], Awaitable[Mapping[str, Any]]]
"""``review(token, audiences)``: the status of a TokenReview; raises ``Unavailable`` without one."""


def bearer(header: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or ``Unauthenticated``."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send Authorization: Bearer <the pod's projected ServiceAccount token>")
    return token.strip()


def identity_from_review(status: Mapping[str, Any], *, audience: str) -> Identity:
    """The identity a TokenReview ``status`` proves; 401 if it proves none, 403 if not a pod's."""
    if not status.get("authenticated"):
        raise Unauthenticated(f"the token is not valid: {status.get('error') or 'not authenticated'}")
    if audience not in (status.get("audiences") or []):
        raise Unauthenticated(f"the token is not meant for {audience!r}")
    user = status.get("user") or {}
    name = str(user.get("username", ""))
    namespace, _, account = name.removeprefix(SA_PREFIX).partition(":")
    if not name.startswith(SA_PREFIX) or not namespace or not account:
        raise Forbidden(f"{name or 'the caller'} is not a ServiceAccount: only inference pods may call")
    extra = user.get("extra") or {}

    def one(key: str) -> str:
        values = extra.get(key) or []
        return str(values[0]) if len(values) == 1 else ""

    pod, uid, node = one(POD_NAME), one(POD_UID), one(NODE_NAME)
    if not pod or not uid:
        raise Forbidden(f"the token of {name} is not bound to a pod (mount a projected token)")
    if not node:
        raise Forbidden(f"the token of pod {namespace}/{pod} names no node: is the pod bound to a car?")
    return Identity(namespace=namespace, service_account=account, pod=pod, pod_uid=uid, node=node)


def authorize(identity: Identity, *, namespace: str, job: str, car: str, pod: str) -> None:
    """Raise ``Forbidden`` unless ``identity`` is ``pod`` of ``namespace/job`` running on ``car``."""
    if identity.node != car:
        raise Forbidden(f"the token is {identity}: it may not act for car {car}")
    if identity.namespace != namespace:
        raise Forbidden(f"the token is {identity}, not of a pod in job {namespace}/{job}'s namespace")
    if identity.pod != pod:
        raise Forbidden(f"the token is {identity}; job {namespace}/{job}'s pod on car {car} is {pod}")


def token_expiry(token: str) -> datetime | None:
    """The ``exp`` claim of a JWT, unverified (the TokenReview verifies), or None if unreadable."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return datetime.fromtimestamp(float(claims["exp"]), tz=UTC)
    except (binascii.Error, ValueError, TypeError, KeyError, OverflowError, OSError):
        return None


@dataclasses.dataclass(frozen=True)
class _Cached:
    identity: Identity
    until: datetime


REVOKED_FOR = timedelta(minutes=11)
"""How long a deleted pod stays refused: longer than any token of it lives (``reconcile.pods``
asks for 600 s), so a review that raced the deletion cannot readmit it."""


class Revocations:
    """Pods the operator saw deleted, recently: by uid when the event had one, else by name
    (then only reviews that began before the deletion are refused: a new pod of that name is
    another pod)."""

    def __init__(self) -> None:
        self._pods: collections.OrderedDict[tuple[str, str], tuple[str | None, datetime]] = (
            collections.OrderedDict()
        )

    def add(self, namespace: str, pod: str, uid: str | None, now: datetime) -> None:
        self._pods.pop((namespace, pod), None)
        self._pods[namespace, pod] = (uid, now)
        while self._pods:
            _, (_, at) = next(iter(self._pods.items()))
            if now - at < REVOKED_FOR:
                break
            self._pods.popitem(last=False)

    def refuses(self, identity: Identity, *, since: datetime) -> bool:
        """Whether ``identity``, vouched for by a review that began at ``since``, is a deleted pod."""
        hit = self._pods.get((identity.namespace, identity.pod))
        if hit is None:
            return False
        uid, at = hit
        return identity.pod_uid == uid if uid is not None else since <= at


class TokenReviewAuthenticator:
    """Tokens checked with TokenReview (through ``review``), positive answers cached until shortly
    before the token expires, at most ``max_entries`` of them (least recently used go first)."""

    def __init__(
        self,
        review: Review,
        *,
        audience: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_entries: int = 20_000,
        margin: timedelta = timedelta(seconds=30),
        timeout_s: float = 5.0,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.review, self.audience, self.clock = review, audience, clock
        self.max_entries, self.margin, self.timeout_s = max_entries, margin, timeout_s
        self.reviews = 0
        self._cache: collections.OrderedDict[bytes, _Cached] = collections.OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[Identity]] = {}
        self._by_pod: dict[tuple[str, str], set[bytes]] = collections.defaultdict(set)
        self._revoked = Revocations()

    def forget_pod(self, namespace: str, pod: str, uid: str | None = None) -> None:
        """The pod was deleted: drop its cached reviews and refuse its tokens from now on."""
        for key in self._by_pod.pop((namespace, pod), set()):
            self._cache.pop(key, None)
        self._revoked.add(namespace, pod, uid, self.clock())

    def _drop(self, key: bytes) -> None:
        gone = self._cache.pop(key, None)
        if gone is not None:
            owned = self._by_pod.get((gone.identity.namespace, gone.identity.pod))
            if owned is not None:
                owned.discard(key)
                if not owned:
                    del self._by_pod[gone.identity.namespace, gone.identity.pod]

    async def authenticate(self, token: str) -> Identity:
        expiry = token_expiry(token)
        now = self.clock()
        if expiry is None:
            raise Unauthenticated("the token is not a JSON Web Token with an expiry")
        if expiry <= now:
            raise Unauthenticated("the token has expired: read the rotated one")
        key = hashlib.sha256(token.encode()).digest()
        hit = self._cache.get(key)
        if hit is not None and now < hit.until:
            self._cache.move_to_end(key)
            return hit.identity
        self._drop(key)
        pending = self._inflight.get(key)
        if pending is None:  # one review for every request that brings this token meanwhile
            pending = asyncio.ensure_future(self._review(token, key, expiry))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(pending)

    async def _review(self, token: str, key: bytes, expiry: datetime) -> Identity:
        self.reviews += 1
        began = self.clock()
        try:
            status = await asyncio.wait_for(self.review(token, [self.audience]), self.timeout_s)
        except TimeoutError as error:
            raise Unavailable(
                f"the API server did not answer a TokenReview in {self.timeout_s:g}s"
            ) from error
        identity = identity_from_review(status, audience=self.audience)
        if self._revoked.refuses(identity, since=began):  # the review raced the pod's deletion
            raise Unauthenticated(f"the token's pod {identity.namespace}/{identity.pod} was deleted")
        self._cache[key] = _Cached(identity, expiry - self.margin)
        self._by_pod[identity.namespace, identity.pod].add(key)
        while len(self._cache) > self.max_entries:
            self._drop(next(iter(self._cache)))
        return identity

    def __len__(self) -> int:
        return len(self._cache)


class StaticAuthenticator:
    """Tokens issued in this process, each for one identity: for tests and benchmarks that run the
    dispatcher without a cluster. The operator never builds one."""

    def __init__(self) -> None:
        self._tokens: dict[str, Identity] = {}

    def forget_pod(self, namespace: str, pod: str, uid: str | None = None) -> None:
        """The pod was deleted: its tokens stop working (as ``TokenReviewAuthenticator``'s do)."""
        for token, identity in list(self._tokens.items()):
            if (identity.namespace, identity.pod) == (namespace, pod) and uid in (None, identity.pod_uid):
                del self._tokens[token]

    def issue(self, identity: Identity) -> str:
        token = secrets.token_urlsafe(24)
        self._tokens[token] = identity
        return token

    async def authenticate(self, token: str) -> Identity:
        identity = self._tokens.get(token)
        if identity is None:
            raise Unauthenticated("the token is not valid: unknown token")
        return identity
