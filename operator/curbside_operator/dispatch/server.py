"""The dispatcher: the small HTTP API through which workers on cars lease, renew, release and
commit work units (``docs/design.md``, ``docs/dispatch.md``; BOINC's scheduler server plays
this part).

Why this exists: workers must not talk to the Kubernetes API (their credentials would reach
far beyond their unit), and a queue per unit in Kubernetes would be one API write per unit.
So the operator serves this API itself, in front of its ledger and result store. It needs no
Kubernetes: the operator tells it which jobs exist (``service.LedgerService``, which this
class extends with HTTP).

The bodies are ``curbside_api.wire``'s models: a request that does not validate is a 400
``BadRequest`` whose ``field`` names the offending field; every other refusal is an
``ErrorBody`` too: 401/403 for a missing or wrong token, 403 ``Quarantined``, 404
``NotFound``, 409 ``Fenced``, 503 ``Unavailable`` (with ``Retry-After``) when the token cannot
be checked now. A result must name its own unit (``result.unit``): one naming another unit
quarantines its car.

Every request carries ``Authorization: Bearer <token>``: the worker's pod's projected
ServiceAccount token. ``auth`` checks it (TokenReview) and that its pod is this job's pod on
the car the request names: a car can act only as itself, and only on its own job.

Ledger calls run on the ledger's one thread (``LedgerService``); results are staged on a small
pool of their own, and committing and publishing a result is one turn on the ledger's thread,
so they never interleave.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pydantic
from aiohttp import web

from curbside_api import wire
from curbside_operator.dispatch import auth, results
from curbside_operator.dispatch.ledger import Fenced, Ledger, Quarantined, UnknownJob, UnknownUnit
from curbside_operator.dispatch.service import LedgerService, RegisteredJob
from curbside_operator.facts import CarFacts

log = logging.getLogger(__name__)

R = TypeVar("R", bound=wire.Request)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 16 * 1024 * 1024


class HttpError(Exception):
    """An error answer: status and body, and how long to wait before retrying (0: no header)."""

    def __init__(
        self, status: int, kind: str, message: str, *, retry_after: int = 0, field: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.body = wire.ErrorBody(error=kind, message=message, field=field)


def bad_request(field: str, message: str) -> HttpError:
    return HttpError(400, "BadRequest", f"{field}: {message}", field=field)


def _json(answer: wire.Answer, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(wire.dump_json(answer), status=status, headers=headers)


class Dispatcher(LedgerService):
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
        super().__init__(ledger, stores=stores)
        self._authenticator, self._pod_name = authenticator, pod_name
        self._clock = clock
        self._cars = cars
        self._staging = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="staging")

    def close(self) -> None:
        super().close()
        self._staging.shutdown(wait=True)

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
        jobs = await self._run(self._ledger.jobs)
        return _json(wire.HealthResponse(ok=True, jobs=len(jobs), served=len(self._jobs)))

    async def _lease(self, request: web.Request) -> web.Response:
        job, body = await self._accept(request, wire.LeaseRequest)
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
            lambda: self._ledger.lease(
                job.key, car=body.car, owner=facts.owner, now=now, per_car=job.per_car, facts=facts
            )
        )
        if lease is None:
            return web.Response(status=204)
        return _json(
            wire.LeaseResponse(
                unit=lease.unit,
                attempt=lease.attempt,
                deadline=lease.deadline,
                resumed=lease.resumed,
                input=job.source.unit_input(lease.unit),
            )
        )

    async def _renew(self, request: web.Request) -> web.Response:
        job, body = await self._accept(request, wire.RenewRequest)
        unit, now = _unit(request), self._clock()
        deadline = await self._run(
            lambda: self._ledger.renew(job.key, unit, body.attempt, car=body.car, now=now)
        )
        return _json(wire.RenewResponse(deadline=deadline))

    async def _release(self, request: web.Request) -> web.Response:
        job, body = await self._accept(request, wire.ReleaseRequest)
        unit, now = _unit(request), self._clock()
        released = await self._run(
            lambda: self._ledger.release(job.key, unit, body.attempt, car=body.car, now=now, error=body.error)
        )
        return _json(wire.ReleaseResponse(released=released))

    async def _complete(self, request: web.Request) -> web.Response:
        job, body = await self._accept(request, wire.CompleteRequest)
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

        def commit() -> wire.CompleteResponse:
            matches = self._match(job, unit, body.attempt, body.result, actual)
            done = self._ledger.complete(
                job.key,
                unit,
                body.attempt,
                car=body.car,
                output_hash=actual,
                result_ref=ref,
                now=now,
                matches=matches,
            )
            published = ref
            if done.committed:  # also on a replay: publishing is idempotent and finishes a crashed one
                published = job.store.publish(ns, name, unit, output_hash=done.output_hash or actual)
            return wire.CompleteResponse(
                commit_id=done.commit_id,
                duplicate=done.duplicate,
                committed=done.committed,
                result_ref=published,
            )

        return _json(await self._run(commit))

    async def _check_unit(self, car: str, unit: int, named: Any, now: datetime) -> None:
        """A result names the unit it was computed for. Naming another one is a lie no honest
        worker tells (an old result sent again): the car is quarantined at once, before two
        cars replaying the same old result could agree on it as a quorum."""
        if type(named) is not int:
            raise bad_request("result.unit", f"must be the unit's number ({unit}), got {named!r}")
        if named != unit:
            reason = f"sent unit {named}'s result as unit {unit}'s"
            await self._run(lambda: self._ledger.quarantine(car, reason=reason, now=now))
            raise Quarantined(car, reason)

    def _match(self, job: RegisteredJob, unit: int, attempt: int, result: Any, digest: str) -> str | None:
        """The earlier output (or a probe's known answer) this result equals within the job's
        tolerance; None when only an exact match could count (the ledger compares hashes)."""
        if job.tolerance <= 0:
            return None
        for candidate in self._ledger.candidates(job.key, unit, attempt):
            if candidate == digest:
                return candidate
            try:
                other = job.store.load(job.namespace, job.name, unit, output_hash=candidate)
            except results.ResultError:
                continue  # a result the store no longer holds cannot vouch for this one
            if results.within(result, other, job.tolerance):
                return candidate
        return None

    async def _accept(self, request: web.Request, model: type[R]) -> tuple[RegisteredJob, R]:
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
        return _json(error.body, status=error.status, headers=headers)
    except auth.AuthError as error:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        return _json(
            wire.ErrorBody(error=error.kind, message=str(error)), status=error.status, headers=headers
        )
    except Fenced as error:
        body = wire.ErrorBody(error="Fenced", message=error.reason, unit=error.unit, attempt=error.attempt)
        return _json(body, status=409)
    except Quarantined as error:
        return _json(wire.ErrorBody(error="Quarantined", message=str(error)), status=403)
    except (UnknownJob, UnknownUnit) as error:
        return _json(wire.ErrorBody(error="NotFound", message=str(error)), status=404)
    except results.ResultError as error:
        return _json(wire.ErrorBody(error="ResultStoreError", message=str(error)), status=500)
    except ConnectionResetError:
        # The worker went away while sending its request (its car drove off, its pod stopped):
        # nothing to answer, and nothing wrong here. Not an error with a traceback in the log.
        log.debug("%s %s: the worker hung up mid-request", request.method, request.path)
        return web.Response(status=400, text="connection lost")
    except web.HTTPException as error:  # aiohttp's own: no route, wrong method, body too large
        if error.status < 400:
            raise
        kind = error.reason.replace(" ", "")
        return _json(wire.ErrorBody(error=kind, message=error.text or ""), status=error.status)
