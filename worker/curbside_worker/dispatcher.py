"""The worker's side of the dispatcher protocol: lease, renew, complete, release.

Why this exists: the dispatcher (served by the operator; ``docs/design.md``, "Data flow") is
the only place the worker learns what to do and the only place its work counts. This module
turns the HTTP contract (``curbside_api.wire``: the bodies; ``docs/dispatch.md``: the
reference) into four calls and a small set of outcomes the worker's loop can act on:

- ``Lease`` (or None: no work now, HTTP 204);
- ``Fenced``: this attempt may no longer act on its unit (409): drop the unit, never retry;
- ``UnknownJob``: the job is gone (404): stop;
- ``Refused``: the dispatcher does not accept our token (401 even after re-reading the rotated
  token file, or 403: this token may not act for this car or job): stop, retrying cannot help;
- ``BadRequest``: 400 or another 4xx: our request is wrong, repeating it cannot help;
- ``Unavailable``: no answer, a timeout, a 5xx (503: the dispatcher cannot check tokens now),
  a 429 (this car is over its quota of results waiting for a quorum; they drain as quorums
  form), or no token file yet: the dispatcher is restarting or unreachable, so the caller backs off
  and tries again; every call here is safe to repeat (a lease repeated after a lost reply gets
  the same attempt back, a repeated completion the same commit).

Every request carries ``Authorization: Bearer <token>`` (``token.DispatcherToken``).
"""

from __future__ import annotations

import dataclasses
import random
import urllib.parse
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from curbside_api import wire
from curbside_worker.token import DispatcherToken, TokenUnavailable


class DispatcherError(Exception):
    """Base of the outcomes below."""


class Fenced(DispatcherError):
    """The attempt is no longer live (stale, fenced, expired): drop the unit."""


class UnknownJob(DispatcherError):
    """The dispatcher does not know the job (deleted, or never there)."""


class Refused(DispatcherError):
    """The dispatcher refused our credentials."""


class Unavailable(DispatcherError):
    """No usable answer: back off and try again."""


class BadRequest(DispatcherError):
    """The dispatcher says our request is wrong (400, other 4xx): repeating it cannot help."""


@dataclasses.dataclass(frozen=True)
class Lease:
    """A unit the worker holds, from the dispatcher's ``wire.LeaseResponse``."""

    unit: int
    attempt: int
    deadline: datetime | None
    input: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class CommitReply:
    """What the worker keeps of a ``wire.CompleteResponse``."""

    commit_id: str
    duplicate: bool


class Backoff:
    """Exponential backoff with full jitter: ``next()`` seconds to wait, ``reset()`` on success.

    The ceiling doubles with every failure in a row (from ``initial`` up to ``maximum``) and the
    wait is drawn uniformly from 0 to the ceiling, so workers that lost the dispatcher at the
    same moment spread their retries over the whole interval instead of returning together.
    """

    def __init__(
        self, *, initial: float = 0.2, maximum: float = 5.0, rng: random.Random | None = None
    ) -> None:
        self.initial, self.maximum = initial, maximum
        self._rng = rng or random.Random()
        self._failures = 0

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * 2**self._failures)
        self._failures += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self._failures = 0

    @property
    def failures(self) -> int:
        return self._failures


class DispatcherClient:
    """One worker's view of one job on one dispatcher."""

    def __init__(
        self,
        base_url: str,
        *,
        namespace: str,
        name: str,
        car: str,
        owner: str,
        token: str | DispatcherToken,
        timeout: float = 10.0,
    ) -> None:
        quote = urllib.parse.quote
        self.car, self.owner = car, owner
        self.job_path = f"/v1/jobs/{quote(namespace, safe='')}/{quote(name, safe='')}"
        self.token = token if isinstance(token, DispatcherToken) else DispatcherToken(token=token)
        self._http = httpx.Client(base_url=base_url.rstrip("/"), auth=self.token, timeout=timeout)

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            response = self._http.post(self.job_path + path, json=body)
        except (httpx.HTTPError, TokenUnavailable) as error:
            raise Unavailable(f"{type(error).__name__}: {error}") from error
        if response.status_code >= 500 or response.status_code == 429:
            raise Unavailable(f"HTTP {response.status_code} from {path}")
        if response.status_code in (401, 403):
            raise Refused(f"HTTP {response.status_code} from {path}: {response.text[:200]}")
        if response.status_code == 404:
            raise UnknownJob(f"{self.job_path}: {response.text[:200]}")
        if response.status_code == 409:
            raise Fenced(_error_text(response))
        if response.status_code not in (200, 204):
            raise BadRequest(f"HTTP {response.status_code} from {path}: {response.text[:200]}")
        return response

    def lease(self) -> Lease | None:
        request = wire.LeaseRequest.model_construct(car=self.car, owner=self.owner)
        response = self._post("/lease", wire.dump(request))
        if response.status_code == 204:
            return None
        body = wire.LeaseResponse.model_validate(response.json())
        return Lease(unit=body.unit, attempt=body.attempt, deadline=body.deadline, input=dict(body.input))

    def renew(self, lease: Lease) -> datetime | None:
        request = wire.RenewRequest.model_construct(car=self.car, attempt=lease.attempt)
        response = self._post(f"/units/{lease.unit}/renew", wire.dump(request))
        return wire.RenewResponse.model_validate(response.json()).deadline

    def complete(self, lease: Lease, *, result: dict[str, Any], output_hash: str) -> CommitReply:
        request = wire.CompleteRequest.model_construct(
            car=self.car, attempt=lease.attempt, output_hash=output_hash, result=result
        )
        response = self._post(f"/units/{lease.unit}/complete", wire.dump(request))
        reply = wire.CompleteResponse.model_validate(response.json())
        return CommitReply(commit_id=reply.commit_id, duplicate=reply.duplicate)

    def release(self, lease: Lease, *, error: str | None = None) -> None:
        """Give the unit back; with ``error`` the attempt counts as failed (bad input, a bug)."""
        request = wire.ReleaseRequest.model_construct(
            car=self.car, attempt=lease.attempt, error=None if error is None else error[:1000]
        )
        self._post(f"/units/{lease.unit}/release", wire.dump(request))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DispatcherClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _error_text(response: httpx.Response) -> str:
    """The refusal's kind and message (``wire.ErrorBody``), or the start of a body that is none."""
    try:
        return wire.ErrorBody.model_validate(response.json()).text()
    except ValueError:
        return response.text[:200]
