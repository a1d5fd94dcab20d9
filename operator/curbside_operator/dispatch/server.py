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
``NotFound``, 409 ``Fenced``, 413 ``TooLarge``, 429 ``QuotaExceeded``, 503 ``Unavailable``
(with ``Retry-After``) when the token cannot be checked now. A result must name its own unit
(``result.unit``): one naming another unit quarantines its car.

Every request carries ``Authorization: Bearer <token>``: the worker's pod's projected
ServiceAccount token. ``auth`` checks it (TokenReview) and that its pod is this job's pod on
the car the request names: a car can act only as itself, and only on its own job.

Every body is hostile: it is read within its limits (``bodies``: size, depth, no NaN; large
ones parsed and hashed in a pool of processes, off the event loop); a result is looked at
only once its car is known to hold the attempt live, and staged within the car's quota
(``staging``). Ledger calls run on the ledger's one thread (``LedgerService``); results are
staged on a small pool of their own, and comparing, committing and publishing a result is one
turn on the ledger's thread, so they never interleave. A deleted pod's tokens stop working at
once (``pod_deleted``). Refusals become answers in ``answers``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from aiohttp import web

from curbside_api import wire
from curbside_api.v1alpha1 import inferencejob
from curbside_operator.dispatch import answers, auth, bodies, results, staging
from curbside_operator.dispatch.answers import HttpError, bad_request
from curbside_operator.dispatch.answers import json_answer as _answer
from curbside_operator.dispatch.ledger import Ledger, LedgerError, Quarantined
from curbside_operator.dispatch.service import LedgerService, RegisteredJob
from curbside_operator.facts import CarFacts

log = logging.getLogger(__name__)

R = TypeVar("R", bound=wire.Request)
PARSERS = 2
"""Threads that parse, check and hash large bodies (``bodies.OFFLOAD_BYTES`` and up)."""
PARSING_SLOTS = 4
"""Large bodies parsed or waiting for a parser at once; more wait unread in their sockets."""


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
        parsers: concurrent.futures.Executor | None = None,
    ) -> None:
        """``cars`` says who a car is (owner, hardware class) from the operator's view of the
        fleet; without it (tests, tools) a lease's own ``owner`` is believed. ``parsers``: where
        large bodies are parsed (default: a pool of ``PARSERS`` processes, started when needed)."""
        super().__init__(ledger, stores=stores)
        self._authenticator, self._pod_name = authenticator, pod_name
        self._clock = clock
        self._cars = cars
        self._staging = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="staging")
        self._parsing: concurrent.futures.Executor | None = parsers
        self._parsing_slots = asyncio.Semaphore(PARSING_SLOTS)
        self._quota = staging.StagingQuota()
        self.inline_parsing = False
        """Parse every body on the event loop, as this class once did: only for
        ``bench/dispatcher_stall.py``'s "before" figure."""

    def close(self) -> None:
        super().close()
        self._staging.shutdown(wait=True)
        if self._parsing is not None:
            self._parsing.shutdown(wait=True)

    def _reset_parsers(self) -> None:
        broken, self._parsing = self._parsing, None
        if broken is not None:
            broken.shutdown(wait=False)

    def _parsers(self) -> concurrent.futures.Executor:
        """The parsing pool, started on first use: processes, because parsing holds the GIL
        (threads would still stall the event loop for as long as a parse takes)."""
        if self._parsing is None:
            context = multiprocessing.get_context("forkserver")
            self._parsing = concurrent.futures.ProcessPoolExecutor(max_workers=PARSERS, mp_context=context)
        return self._parsing

    def register_job(
        self,
        namespace: str,
        name: str,
        uid: str,
        spec: inferencejob.InferenceJobSpec,
        *,
        dataset_items: int | None = None,
    ) -> str:
        """``LedgerService.register_job``, then sweep the job's staging folder of what no
        submission needs (what a crash, or an older dispatcher, left there)."""
        key = super().register_job(namespace, name, uid, spec, dataset_items=dataset_items)
        job = self._jobs[namespace, name]
        removed = staging.sweep(self._ledger, job.store, key, namespace, name, self._quota)
        if removed:
            log.info("job %s/%s: removed %d stale staged results", namespace, name, removed)
        return key

    def pod_deleted(self, namespace: str, pod: str, uid: str | None = None) -> None:
        """The operator saw ``pod`` deleted: its tokens are refused from now on (the
        authenticator forgets what it cached), not only once they expire."""
        forget = getattr(self._authenticator, "forget_pod", None)
        if forget is not None:
            forget(namespace, pod, uid)

    # -- HTTP --------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=bodies.MAX_RESULT_BODY, middlewares=[answers.errors])
        base = "/v1/jobs/{namespace}/{name}"
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post(f"{base}/lease", self._lease)
        app.router.add_post(f"{base}/units/{{unit}}/renew", self._renew)
        app.router.add_post(f"{base}/units/{{unit}}/complete", self._complete)
        app.router.add_post(f"{base}/units/{{unit}}/release", self._release)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        jobs = await self._run(self._ledger.jobs)
        return _answer(wire.HealthResponse(ok=True, jobs=len(jobs), served=len(self._jobs)))

    async def _lease(self, request: web.Request) -> web.Response:
        job, body = await self._body(request, wire.LeaseRequest)
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
        return _answer(
            wire.LeaseResponse(
                unit=lease.unit,
                attempt=lease.attempt,
                deadline=lease.deadline,
                resumed=lease.resumed,
                input=job.source.unit_input(lease.unit),
            )
        )

    async def _renew(self, request: web.Request) -> web.Response:
        job, body = await self._body(request, wire.RenewRequest)
        unit, now = answers.unit_of(request), self._clock()
        deadline = await self._run(
            lambda: self._ledger.renew(job.key, unit, body.attempt, car=body.car, now=now)
        )
        return _answer(wire.RenewResponse(deadline=deadline))

    async def _release(self, request: web.Request) -> web.Response:
        job, body = await self._body(request, wire.ReleaseRequest)
        unit, now = answers.unit_of(request), self._clock()
        released = await self._run(
            lambda: self._ledger.release(job.key, unit, body.attempt, car=body.car, now=now, error=body.error)
        )
        return _answer(wire.ReleaseResponse(released=released))

    async def _complete(self, request: web.Request) -> web.Response:
        job, parsed = await self._accept(request, wire.CompleteRequest)
        body, digest = parsed.body, parsed.digest
        unit, now = answers.unit_of(request), self._clock()
        if digest != body.output_hash:
            raise bad_request("outputHash", f"is not the SHA-256 of the canonical JSON of result ({digest})")
        named = body.result.get("unit")
        if type(named) is not int:
            raise bad_request("result.unit", f"must be the unit's number ({unit}), got {named!r}")
        # Fencing first: nothing of a result is looked at, compared or written to disk unless
        # its car holds this attempt live. Anything else (a replay, a stale attempt) is the
        # ledger's to answer, and it needs neither.
        if not await self._run(lambda: self._holds(job, unit, body.attempt, body.car, now)):
            return _answer(await self._run(lambda: self._decide(job, unit, body, digest, None, now)))
        if named != unit:
            await self._quarantine(body.car, unit, named, now)
        staged = (job.namespace, job.name, unit, digest)
        ref = await asyncio.get_running_loop().run_in_executor(
            self._staging, lambda: self._stage(job, body.car, staged, parsed.canonical)
        )
        kept = False
        try:
            answer, kept = await self._run(lambda: self._commit(job, unit, parsed, ref, now))
        finally:
            self._quota.done(body.car, staged, kept=kept)
        return _answer(answer)

    def _holds(self, job: RegisteredJob, unit: int, attempt: int, car: str, now: datetime) -> bool:
        """Whether ``car`` holds ``attempt`` of ``unit`` live now (on the ledger's thread)."""
        return any(
            (a.unit, a.attempt, a.car) == (unit, attempt, car) and now < a.deadline
            for a in self._ledger.live(job.key)
        )

    def _stage(self, job: RegisteredJob, car: str, staged: staging.Staged, data: bytes) -> str:
        """Charge the staged file to ``car`` (``QuotaExceeded``) and write it (staging pool)."""
        ns, name, unit, digest = staged

        def exists(other: staging.Staged) -> bool:
            o_ns, o_name, o_unit, o_digest = other
            served = self._jobs.get((o_ns, o_name))
            return served is not None and served.store.is_staged(o_ns, o_name, o_unit, output_hash=o_digest)

        self._quota.reserve(car, staged, len(data), exists=exists)
        try:
            return job.store.stage(ns, name, unit, output_hash=digest, data=data)
        except BaseException:
            self._quota.done(car, staged, kept=False)
            raise

    def _commit(
        self,
        job: RegisteredJob,
        unit: int,
        parsed: bodies.Parsed[wire.CompleteRequest],
        ref: str,
        now: datetime,
    ) -> tuple[wire.CompleteResponse, bool]:
        """Compare, commit and publish a staged result (on the ledger's thread); the answer, and
        whether its staged file is still needed. A file nobody needs is removed here."""
        body, digest = parsed.body, parsed.digest
        matches = None
        try:
            if job.tolerance > 0 and self._holds(job, unit, body.attempt, body.car, now):
                matches = self._match(job, unit, body.attempt, parsed)
            answer = self._decide(job, unit, body, digest, ref, now, matches=matches)
        except LedgerError:  # refused (not a store failure after a commit: its retry needs the file)
            self._unstage_unless_needed(job, unit, body.attempt, digest)
            raise
        kept = not answer.committed and self._unstage_unless_needed(job, unit, body.attempt, digest)
        return answer, kept

    def _unstage_unless_needed(self, job: RegisteredJob, unit: int, attempt: int, digest: str) -> bool:
        """Remove the staged ``digest`` of ``unit`` unless a waiting submission or another request
        in flight needs it; whether it stays."""
        staged = (job.namespace, job.name, unit, digest)
        if self._quota.in_use(staged) > 1 or staging.needed(self._ledger, job.key, unit, digest, attempt):
            return True
        job.store.unstage(job.namespace, job.name, unit, output_hash=digest)
        return False

    def _decide(
        self,
        job: RegisteredJob,
        unit: int,
        body: wire.CompleteRequest,
        digest: str,
        ref: str | None,
        now: datetime,
        *,
        matches: str | None = None,
    ) -> wire.CompleteResponse:
        """The ledger's verdict on a submission, and the result published if its unit committed."""
        ns, name = job.namespace, job.name
        done = self._ledger.complete(
            job.key,
            unit,
            body.attempt,
            car=body.car,
            output_hash=digest,
            result_ref=ref if ref is not None else job.store.ref(ns, name, unit),
            now=now,
            matches=matches,
        )
        self.unpublish_revoked()  # a verdict may have quarantined a car and revoked its results
        published = ref or job.store.ref(ns, name, unit)
        if done.committed:  # also on a replay: publishing is idempotent and finishes a crashed one
            published = job.store.publish(ns, name, unit, output_hash=done.output_hash or digest)
        return wire.CompleteResponse(
            commit_id=done.commit_id, duplicate=done.duplicate, committed=done.committed, result_ref=published
        )

    async def _quarantine(self, car: str, unit: int, named: int, now: datetime) -> None:
        """A result names the unit it was computed for. Naming another one is a lie no honest
        worker tells (an old result sent again): the car is quarantined at once, before two
        cars replaying the same old result could agree on it as a quorum."""
        reason = f"sent unit {named}'s result as unit {unit}'s"
        await self._run(lambda: self._ledger.quarantine(car, reason=reason, now=now))
        await self._run(self.unpublish_revoked)
        raise Quarantined(car, reason)

    def _match(
        self, job: RegisteredJob, unit: int, attempt: int, parsed: bodies.Parsed[wire.CompleteRequest]
    ) -> str | None:
        """The earlier output (or a probe's known answer) this result equals within the job's
        tolerance; None when only an exact match could count (the ledger compares hashes). A
        large result is compared in the parsing pool (it holds the GIL as parsing does)."""
        ns, name, tolerance = job.namespace, job.name, job.tolerance
        for candidate in self._ledger.candidates(job.key, unit, attempt):
            if candidate == parsed.digest:
                return candidate
            if parsed.partial or len(parsed.canonical) >= bodies.OFFLOAD_BYTES:
                same = (
                    self._parsers()
                    .submit(
                        results.within_stored,
                        job.store,
                        ns,
                        name,
                        unit,
                        candidate,
                        parsed.canonical,
                        tolerance,
                    )
                    .result()
                )
            else:
                same = results.within_stored(
                    job.store, ns, name, unit, candidate, parsed.body.result, tolerance
                )
            if same:
                return candidate
        return None

    async def _body(self, request: web.Request, model: type[R]) -> tuple[RegisteredJob, R]:
        job, parsed = await self._accept(request, model)
        return job, parsed.body

    async def _accept(self, request: web.Request, model: type[R]) -> tuple[RegisteredJob, bodies.Parsed[R]]:
        """The registered job and the validated, authenticated body of a request."""
        ns, name = request.match_info["namespace"], request.match_info["name"]
        job = self._jobs.get((ns, name))
        if job is None:
            raise HttpError(404, "NotFound", f"no job {ns}/{name} is being dispatched")
        identity = await self._authenticator.authenticate(
            auth.bearer(request.headers.get("Authorization", ""))
        )
        limit = bodies.MAX_RESULT_BODY if model is wire.CompleteRequest else bodies.MAX_SMALL_BODY
        if request.content_length is not None and request.content_length > limit:
            raise answers.too_large(request.content_length, limit)
        data = await answers.read(request, limit)
        try:
            if len(data) < bodies.OFFLOAD_BYTES or self.inline_parsing:
                parsed = bodies.parse(data, model, limit=limit)
            else:  # parsing, validating and hashing megabytes would stall every other request
                async with self._parsing_slots:
                    parsed = await asyncio.get_running_loop().run_in_executor(
                        self._parsers(), bodies.parse_offloaded, data, model, limit
                    )
        except bodies.BodyError as error:
            kind = "TooLarge" if error.status == 413 else "BadRequest"
            raise HttpError(error.status, kind, str(error), field=error.field) from error
        except concurrent.futures.BrokenExecutor as error:  # a parser died: start a new pool
            self._reset_parsers()
            log.warning("the parsing pool broke (%s); starting a new one", error)
            raise HttpError(
                503, "Unavailable", "the dispatcher could not parse the body now; retry", retry_after=1
            ) from error
        body = parsed.body
        auth.authorize(identity, namespace=ns, job=name, car=body.car, pod=self._pod_name(name, body.car))
        return job, parsed
