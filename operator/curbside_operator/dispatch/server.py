"""The dispatcher: the small HTTP API through which workers on cars lease, renew, release and
commit work units (DESIGN.md §4; BOINC's scheduler server plays this part).

Why this exists: workers must not talk to the Kubernetes API (their credentials would reach
far beyond their unit), and a queue per unit in Kubernetes would be one API write per unit.
So the operator serves this API itself, in front of its ledger and result store. It needs no
Kubernetes: the operator tells it which jobs exist with ``register_job``/``unregister_job``.

Wire protocol (JSON in and out; ``docs/dispatch.md`` has the full reference):

- ``POST /v1/jobs/{ns}/{name}/lease`` ``{"car", "owner"}`` → 200 ``{"unit", "attempt",
  "deadline", "input"}``, or 204 when no unit needs a car now.
- ``POST /v1/jobs/{ns}/{name}/units/{unit}/renew`` ``{"car", "attempt"}`` → 200 ``{"deadline"}``.
- ``POST .../units/{unit}/complete`` ``{"car", "attempt", "outputHash", "result"}`` → 200
  ``{"commitId", "duplicate", "committed", "resultRef"}``. ``result.unit`` must be ``{unit}``:
  a result naming another unit quarantines its car (403 ``Quarantined``).
- ``POST .../units/{unit}/release`` ``{"car", "attempt", "error"?}`` → 200 ``{"released"}``.
- ``GET /healthz``.

Errors are ``{"error": <kind>, "message", ...}``: 400 ``BadRequest`` with ``field`` naming the
offending field, 401/403 for a missing or wrong token, 404 ``NotFound``, 409 ``Fenced``, 503
``Unavailable`` (with ``Retry-After``) when the token cannot be checked now.

Every request carries ``Authorization: Bearer <token>``: the worker's pod's projected
ServiceAccount token. ``auth`` checks it (TokenReview) and that its pod is this job's pod on
the car the request names: a car can act only as itself, and only on its own job.

Ledger and store calls run one at a time on one thread, off the event loop: SQLite has one
writer anyway, and staging, committing and publishing a result must not interleave.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import pydantic
from aiohttp import web
from pydantic.alias_generators import to_camel

from curbside_api.v1alpha1 import inferencejob
from curbside_operator.dispatch import auth, inputs, results
from curbside_operator.dispatch.ledger import (
    CarFacts,
    Commit,
    Fenced,
    Ledger,
    Quarantined,
    UnknownJob,
    UnknownUnit,
    Validation,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
B = TypeVar("B", bound="_Body")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Name = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=253)]
MAX_BODY = 16 * 1024 * 1024


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- request bodies --------------------------------------------------------------------------
class _Body(pydantic.BaseModel):
    """Every request names the car it comes from (and its token must be that car's)."""

    model_config = pydantic.ConfigDict(alias_generator=to_camel, extra="forbid", strict=True, frozen=True)

    car: Name


class LeaseBody(_Body):
    owner: Name


class AttemptBody(_Body):
    attempt: int = pydantic.Field(ge=1)


class ReleaseBody(AttemptBody):
    error: str | None = pydantic.Field(None, max_length=1024)


class CompleteBody(AttemptBody):
    output_hash: str = pydantic.Field(pattern=r"^[0-9a-f]{64}$")
    result: dict[str, Any]


class HttpError(Exception):
    """An error answer: status, kind and message, plus extra fields for the body."""

    def __init__(self, status: int, kind: str, message: str, *, retry_after: int = 0, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.body = {"error": kind, "message": message, **extra}


def bad_request(field: str, message: str) -> HttpError:
    return HttpError(400, "BadRequest", f"{field}: {message}", field=field)


# -- the registry ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RegisteredJob:
    """What the dispatcher knows about a job the operator registered."""

    namespace: str
    name: str
    key: str
    source: inputs.InputSource
    store: results.ResultStore
    per_car: int
    tolerance: float = 0.0


def validation_for(spec: inferencejob.InferenceJobSpec) -> Validation:
    """How the ledger checks a job's results, from its ``spec.redundancy``."""
    r, model = spec.redundancy, spec.model
    return Validation(
        model=f"{model.name}:{model.version if model.version is not None else 'latest'}",
        adaptive=r.adaptive and r.replicas > 1,
        trust_after=r.trust_after,
        spot_percent=r.spot_check_percent,
        probe_percent=r.probe_percent if r.replicas > 1 else 0,
        quarantine_after=r.quarantine_after,
    )


class Dispatcher:
    """The ledger, the result stores and the registry of jobs, behind the HTTP API (``app``)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        authenticator: auth.Authenticator,
        pod_name: Callable[[str, str], str],
        stores: Callable[[str], results.ResultStore] = results.store_for_uri,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cars: Callable[[str], CarFacts | None] | None = None,
    ) -> None:
        """``cars`` says who a car is (owner, hardware class) from the operator's view of the
        fleet; without it (tests, tools) a lease's own ``owner`` is believed."""
        self.ledger = ledger
        self._authenticator, self._pod_name = authenticator, pod_name
        self._stores = stores
        self._clock = clock
        self._cars = cars
        self._jobs: dict[tuple[str, str], RegisteredJob] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self._staging = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="staging")

    # -- called by the operator --------------------------------------------------------------
    def register_job(
        self,
        namespace: str,
        name: str,
        uid: str,
        spec: inferencejob.InferenceJobSpec,
        *,
        dataset_items: int | None = None,
    ) -> str:
        """Make the job leasable; returns its ledger key. Idempotent (call it on every resume).

        Raises ``inputs.UnsplittableInput`` or ``results.UnsupportedOutput`` (each naming the
        field) for a job that cannot run. Publishes any result a crash left staged.
        """
        key = f"{namespace}/{name}/{uid}"
        source = inputs.source_for(spec.input, dataset_items=dataset_items)
        store = self._stores(spec.output.uri)
        self.ledger.add_job(
            key,
            units=source.units,
            unit_timeout=timedelta(seconds=spec.unit_timeout_seconds),
            max_attempts=spec.max_attempts,
            replicas=spec.redundancy.replicas,
            quorum=spec.redundancy.quorum,
            distinct_owners=spec.redundancy.distinct_owners,
            validation=validation_for(spec),
        )
        for done in self.ledger.results(key):
            if not store.published(namespace, name, done.unit, output_hash=done.output_hash):
                store.publish(namespace, name, done.unit, output_hash=done.output_hash)
        per_car = spec.placement.max_units_per_car
        self._jobs[namespace, name] = RegisteredJob(
            namespace, name, key, source, store, per_car, spec.redundancy.tolerance
        )
        return key

    def unregister_job(self, namespace: str, name: str) -> None:
        """Stop serving the job (the ledger keeps it until ``ledger.delete_job``)."""
        self._jobs.pop((namespace, name), None)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._staging.shutdown(wait=True)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (ledger work) on the ledger's thread, in turn with the workers' requests."""
        return await self._run(fn)

    def served(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._jobs

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    # -- HTTP --------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[_errors])
        base = "/v1/jobs/{namespace}/{name}"
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post(f"{base}/lease", self._lease)
        app.router.add_post(f"{base}/units/{{unit}}/renew", self._renew)
        app.router.add_post(f"{base}/units/{{unit}}/complete", self._complete)
        app.router.add_post(f"{base}/units/{{unit}}/release", self._release)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        jobs = await self._run(self.ledger.jobs)
        return web.json_response({"ok": True, "jobs": len(jobs), "served": len(self._jobs)})

    async def _lease(self, request: web.Request) -> web.Response:
        job, body = await self._accept(request, LeaseBody)
        now = self._clock()
        facts = CarFacts(owner=body.owner) if self._cars is None else self._cars(body.car)
        if facts is None:  # the token proved its pod runs there: the fleet view is still filling
            raise HttpError(
                503,
                "Unavailable",
                f"car {body.car} is not among the VehicleNodes this operator knows yet; retry",
                retry_after=5,
            )
        lease = await self._run(
            lambda: self.ledger.lease(
                job.key, car=body.car, owner=facts.owner, now=now, per_car=job.per_car, facts=facts
            )
        )
        if lease is None:
            return web.Response(status=204)
        answer = {"unit": lease.unit, "attempt": lease.attempt, "deadline": rfc3339(lease.deadline)}
        return web.json_response(
            {**answer, "resumed": lease.resumed, "input": job.source.unit_input(lease.unit)}
        )

    async def _renew(self, request: web.Request) -> web.Response:
        job, body = await self._accept(request, AttemptBody)
        unit, now = _unit(request), self._clock()
        deadline = await self._run(
            lambda: self.ledger.renew(job.key, unit, body.attempt, car=body.car, now=now)
        )
        return web.json_response({"deadline": rfc3339(deadline)})

    async def _release(self, request: web.Request) -> web.Response:
        job, body = await self._accept(request, ReleaseBody)
        unit, now = _unit(request), self._clock()
        released = await self._run(
            lambda: self.ledger.release(job.key, unit, body.attempt, car=body.car, now=now, error=body.error)
        )
        return web.json_response({"released": released})

    async def _complete(self, request: web.Request) -> web.Response:
        job, body = await self._accept(request, CompleteBody)
        unit, now = _unit(request), self._clock()
        try:
            actual = results.output_hash(body.result)
        except ValueError as error:
            raise bad_request("result", f"not JSON that can be hashed: {error}") from error
        if actual != body.output_hash:
            raise bad_request("outputHash", f"is not the SHA-256 of the canonical JSON of result ({actual})")
        await self._check_unit(body.car, unit, body.result.get("unit"), now)

        ns, name = job.namespace, job.name
        ref = await asyncio.get_running_loop().run_in_executor(
            self._staging, lambda: job.store.stage(ns, name, unit, result=body.result, output_hash=actual)
        )

        def commit() -> dict[str, Any]:
            matches = self._match(job, unit, body.attempt, body.result, actual)
            done = self.ledger.complete(
                job.key,
                unit,
                body.attempt,
                car=body.car,
                output_hash=actual,
                result_ref=ref,
                now=now,
                matches=matches,
            )
            if done.committed:  # also on a replay: publishing is idempotent and finishes a crashed one
                published = job.store.publish(ns, name, unit, output_hash=done.output_hash or actual)
                return {**answer(done), "resultRef": published}
            return {**answer(done), "resultRef": ref}

        def answer(done: Commit) -> dict[str, Any]:
            return {"commitId": done.commit_id, "duplicate": done.duplicate, "committed": done.committed}

        return web.json_response(await self._run(commit))

    async def _check_unit(self, car: str, unit: int, named: Any, now: datetime) -> None:
        """A result names the unit it was computed for. Naming another one is a lie no honest
        worker tells (an old result sent again): the car is quarantined at once, before two
        cars replaying the same old result could agree on it as a quorum."""
        if type(named) is not int:
            raise bad_request("result.unit", f"must be the unit's number ({unit}), got {named!r}")
        if named != unit:
            reason = f"sent unit {named}'s result as unit {unit}'s"
            await self._run(lambda: self.ledger.quarantine(car, reason=reason, now=now))
            raise Quarantined(car, reason)

    def _match(self, job: RegisteredJob, unit: int, attempt: int, result: Any, digest: str) -> str | None:
        """The earlier output (or a probe's known answer) this result equals within the job's
        tolerance; None when only an exact match could count (the ledger compares hashes)."""
        if job.tolerance <= 0:
            return None
        for candidate in self.ledger.candidates(job.key, unit, attempt):
            if candidate == digest:
                return candidate
            try:
                other = job.store.load(job.namespace, job.name, unit, output_hash=candidate)
            except results.ResultError:
                continue  # a result the store no longer holds cannot vouch for this one
            if results.within(result, other, job.tolerance):
                return candidate
        return None

    async def _accept(self, request: web.Request, model: type[B]) -> tuple[RegisteredJob, B]:
        """The registered job and the validated, authenticated body of a request."""
        ns, name = request.match_info["namespace"], request.match_info["name"]
        job = self._jobs.get((ns, name))
        if job is None:
            raise HttpError(404, "NotFound", f"no job {ns}/{name} is being dispatched")
        identity = await self._authenticator.authenticate(
            auth.bearer(request.headers.get("Authorization", ""))
        )
        try:
            raw = json.loads(await request.read())
        except ValueError as error:
            raise bad_request("body", f"not JSON: {error}") from error
        if not isinstance(raw, dict):
            raise bad_request("body", "must be a JSON object")
        try:
            body = model.model_validate(raw)
        except pydantic.ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "body"
            raise bad_request(field, first["msg"]) from error
        auth.authorize(identity, namespace=ns, job=name, car=body.car, pod=self._pod_name(name, body.car))
        return job, body


def _unit(request: web.Request) -> int:
    text = request.match_info["unit"]
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise bad_request("unit", f"{text!r} is not a unit number")
    return int(text)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn the dispatcher's and the ledger's exceptions into JSON error answers."""
    try:
        return await handler(request)
    except HttpError as error:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        return web.json_response(error.body, status=error.status, headers=headers)
    except auth.AuthError as error:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        return web.json_response(
            {"error": error.kind, "message": str(error)}, status=error.status, headers=headers
        )
    except Fenced as error:
        body = {"error": "Fenced", "message": error.reason, "unit": error.unit, "attempt": error.attempt}
        return web.json_response(body, status=409)
    except Quarantined as error:
        return web.json_response({"error": "Quarantined", "message": str(error)}, status=403)
    except (UnknownJob, UnknownUnit) as error:
        return web.json_response({"error": "NotFound", "message": str(error)}, status=404)
    except results.ResultError as error:
        return web.json_response({"error": "ResultStoreError", "message": str(error)}, status=500)
    except ConnectionResetError:
        # The worker went away while sending its request (its car drove off, its pod stopped):
        # nothing to answer, and nothing wrong here. Not an error with a traceback in the log.
        log.debug("%s %s: the worker hung up mid-request", request.method, request.path)
        return web.Response(status=400, text="connection lost")
    except web.HTTPException as error:  # aiohttp's own: no route, wrong method, body too large
        if error.status < 400:
            raise
        return web.json_response(
            {"error": error.reason.replace(" ", ""), "message": error.text}, status=error.status
        )
