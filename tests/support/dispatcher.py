"""The dispatcher in tests: the real one in a harness for its HTTP tests, and a fake one that
a real worker talks to over HTTP (``make_worker`` wires one to it and to a stand-in Triton).

Why this exists: the dispatcher's tests and the worker's tests (and the simulator's, which run
real workers) all need a dispatcher to talk to. The real one comes in ``Harness``: a file
ledger, a folder store and a clock the test moves (``TrustHarness``: a replicated job, compared
within a tolerance, and a fleet directory the test fills in). The fake (``FakeDispatcher``) lets the
worker's tests show lease, renew, commit, release, fencing and surviving a dispatcher restart
over real HTTP, without the operator. Its state (units, attempts, commits, an event log) lives
in the object, not in the HTTP server, so ``restart()`` behaves like the real dispatcher
restarting on its durable ledger: same port, same state. It speaks ``curbside_api.wire``, as
the real one does.

The fake's rules are the real one's contract: a unit is leased to one car at a time; an
attempt number only grows; renew/complete/release from anything but the live attempt get 409
``Fenced``; a repeated completion with the same hash gets the same commit id with
``duplicate: true``; a lease past its deadline can be handed to someone else; a body that does
not validate, or an ``outputHash`` that is not the SHA-256 of the result's canonical JSON
(UTF-8, sorted keys, no spaces), is a 400 naming the field.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pydantic
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from curbside_api import wire
from curbside_api.v1alpha1 import inferencejob
from curbside_operator.dispatch import auth, results
from curbside_operator.dispatch.server import Dispatcher
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from curbside_operator.facts import CarFacts
from curbside_operator.reconcile.placement import pod_name
from curbside_worker import runner
from curbside_worker.workloads import minilm
from tests.support.fake_triton import TOKEN, FakeTriton
from tests.support.ledger import T0

BASE = "/v1/jobs/demo/seti"
Client = TestClient[web.Request, web.Application]


# -- the real dispatcher -----------------------------------------------------------------------
def spec(**overrides: Any) -> inferencejob.InferenceJobSpec:
    body = {
        "model": {"name": "seti-spike-search"},
        "input": {"generated": {"seed": 7, "units": 2, "itemsPerUnit": 4, "parameters": {"snrDb": "12"}}},
        "output": {"uri": "file:///unused"},
        "unitTimeoutSeconds": 30,
        **overrides,
    }
    return inferencejob.InferenceJobSpec.model_validate(body)


class Harness:
    """A dispatcher on a file ledger and a folder store, with a clock the test moves."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        authenticator: auth.Authenticator | None = None,
        parsers: concurrent.futures.Executor | None = None,
    ) -> None:
        self.now = T0
        self.store = results.FolderResultStore(tmp_path / "results", fsync=False)
        self.ledger = SqliteLedger(tmp_path / "ledger.db", durable=False)
        self.tokens = auth.StaticAuthenticator()
        self.dispatcher = Dispatcher(
            self.ledger,
            authenticator=authenticator if authenticator is not None else self.tokens,
            pod_name=pod_name,
            stores=lambda uri: self.store,
            clock=self.clock,
            parsers=parsers,
        )
        self.key = self.dispatcher.register_job("demo", "seti", "uid-1", spec())

    def clock(self) -> datetime:
        return self.now

    def auth(
        self, car: str, *, job: str = "seti", namespace: str = "demo", node: str | None = None
    ) -> dict[str, str]:
        """The token of ``job``'s pod on ``car`` (running on ``node``, by default that car)."""
        identity = auth.Identity(namespace, "default", pod_name(job, car), f"uid-{car}", node or car)
        return {"Authorization": f"Bearer {self.tokens.issue(identity)}"}

    async def post(self, client: Client, path: str, body: Any, *, car: str | None = None) -> tuple[int, Any]:
        car = car if car is not None else (body.get("car", "") if isinstance(body, dict) else "")
        data = body if isinstance(body, str) else json.dumps(body)
        response = await client.post(f"{BASE}{path}", data=data, headers=self.auth(car))
        return response.status, (await response.json() if response.status != 204 else None)

    def run(self, scenario: Callable[[Client], Awaitable[None]]) -> None:
        async def main() -> None:
            async with TestClient(TestServer(self.dispatcher.app())) as client:
                await scenario(client)

        try:
            asyncio.run(main())
        finally:
            self.dispatcher.close()
            assert self.ledger.verify() == []
            self.ledger.close()


TRUST = "/v1/jobs/demo/trust"
REDUNDANCY = {"replicas": 2, "quorum": 2, "tolerance": 0.01, "quarantineAfter": 1}


class TrustHarness(Harness):
    """The harness with a replicated job and a fleet directory the test fills in."""

    def __init__(self, tmp_path: Path, *, units: int = 2, **redundancy: Any) -> None:
        super().__init__(tmp_path)
        self.fleet: dict[str, CarFacts] = {}
        self.dispatcher.close()  # the plain harness's: this one knows the fleet
        self.dispatcher = Dispatcher(
            self.ledger,
            authenticator=self.tokens,
            pod_name=pod_name,
            stores=lambda uri: self.store,
            clock=self.clock,
            cars=self.fleet.get,
        )
        generated = {"seed": 7, "units": units, "itemsPerUnit": 4}
        job = spec(redundancy={**REDUNDANCY, **redundancy}, input={"generated": generated})
        self.key = self.dispatcher.register_job("demo", "trust", "uid-2", job)

    async def call(self, client: Client, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        response = await client.post(
            f"{TRUST}{path}", data=json.dumps(body), headers=self.auth(body["car"], job="trust")
        )
        return response.status, (await response.json() if response.status != 204 else None)

    async def finish(self, client: Client, car: str, result: dict[str, Any]) -> tuple[int, Any]:
        """Lease a unit and send ``result`` for it (named for that unit, as a worker does,
        unless the result already names one)."""
        status, lease = await self.call(client, "/lease", {"car": car, "owner": "claimed"})
        assert status == 200, lease
        result = {"unit": lease["unit"], **result}
        body = {
            "car": car,
            "attempt": lease["attempt"],
            "outputHash": results.output_hash(result),
            "result": result,
        }
        return await self.call(client, f"/units/{lease['unit']}/complete", body)


# -- the fake dispatcher -----------------------------------------------------------------------
@dataclasses.dataclass
class UnitState:
    input: dict[str, Any]
    attempt: int = 0
    holder: str | None = None
    deadline: datetime | None = None
    result: dict[str, Any] | None = None
    output_hash: str | None = None
    commit_id: str | None = None


REQUESTS: dict[str, type[wire.AttemptRequest]] = {
    "renew": wire.RenewRequest,
    "complete": wire.CompleteRequest,
    "release": wire.ReleaseRequest,
}


def _answer(body: wire.Answer, status: int = 200) -> web.Response:
    return web.json_response(wire.dump_json(body), status=status)


class FakeDispatcher:
    def __init__(
        self,
        inputs: list[dict[str, Any]],
        *,
        token: str = TOKEN,
        namespace: str = "demo",
        name: str = "job",
        unit_timeout_s: float = 30.0,
    ) -> None:
        self.units = [UnitState(input=spec) for spec in inputs]
        self.token, self.namespace, self.name = token, namespace, name
        self.unit_timeout = timedelta(seconds=unit_timeout_s)
        self.events: list[tuple[str, int, int, str]] = []
        self.unauthorized = 0
        self.port = 0
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- protocol -----------------------------------------------------------------------------
    def _record(self, kind: str, unit: int, attempt: int, car: str) -> None:
        with self._changed:
            self.events.append((kind, unit, attempt, car))
            self._changed.notify_all()

    def _live(self, unit: int, body: wire.AttemptRequest) -> UnitState | None:
        state = self.units[unit]
        ok = state.holder == body.car and state.attempt == body.attempt and state.result is None
        return state if ok else None

    async def _handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.unauthorized += 1
            return _answer(wire.ErrorBody(error="Unauthorized", message="not the token"), 401)
        if (request.match_info["ns"], request.match_info["name"]) != (self.namespace, self.name):
            return _answer(wire.ErrorBody(error="NotFound", message="no such job"), 404)
        action = request.match_info["action"]
        model: type[wire.Request] = wire.LeaseRequest if action == "lease" else REQUESTS[action]
        try:
            body = model.model_validate(await request.json())
        except pydantic.ValidationError as error:
            field = ".".join(str(part) for part in error.errors()[0]["loc"]) or "body"
            return _answer(wire.ErrorBody(error="BadRequest", message=f"{field}: invalid", field=field), 400)
        now = datetime.now(UTC)
        if isinstance(body, wire.LeaseRequest):
            return self._lease(body, now)
        assert isinstance(body, wire.AttemptRequest)
        unit = int(request.match_info["unit"])
        state = self._live(unit, body)
        if state is None:
            duplicate = self.units[unit].output_hash
            replayed = isinstance(body, wire.CompleteRequest) and body.output_hash == duplicate
            if replayed and duplicate is not None:
                self._record("duplicate", unit, body.attempt, body.car)
                commit_id = self.units[unit].commit_id or ""
                return _answer(wire.CompleteResponse(commit_id=commit_id, duplicate=True))
            self._record(f"fenced-{action}", unit, body.attempt, body.car)
            why = "not the live attempt"
            return _answer(wire.ErrorBody(error="Fenced", message=why, unit=unit, attempt=body.attempt), 409)
        if isinstance(body, wire.RenewRequest):
            state.deadline = now + self.unit_timeout
            self._record("renew", unit, state.attempt, body.car)
            return _answer(wire.RenewResponse(deadline=state.deadline))
        if isinstance(body, wire.ReleaseRequest):
            state.holder, state.deadline = None, None
            self._record("release-error" if body.error else "release", unit, state.attempt, body.car)
            return _answer(wire.ReleaseResponse(released=True))
        assert isinstance(body, wire.CompleteRequest)
        text = json.dumps(body.result, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if hashlib.sha256(text.encode()).hexdigest() != body.output_hash:
            self._record("bad-hash", unit, state.attempt, body.car)
            message = "outputHash: is not the SHA-256 of the canonical JSON of result"
            return _answer(wire.ErrorBody(error="BadRequest", message=message, field="outputHash"), 400)
        canonical = hashlib.sha256(body.output_hash.encode()).hexdigest()[:16]
        state.result, state.output_hash, state.commit_id = body.result, body.output_hash, canonical
        self._record("complete", unit, state.attempt, body.car)
        return _answer(wire.CompleteResponse(commit_id=canonical, duplicate=False))

    def _lease(self, body: wire.LeaseRequest, now: datetime) -> web.Response:
        for index, state in enumerate(self.units):
            free = state.holder is None or (state.deadline is not None and state.deadline < now)
            if state.result is None and free:
                state.attempt += 1
                state.holder, state.deadline = body.car, now + self.unit_timeout
                self._record("lease", index, state.attempt, body.car)
                lease = wire.LeaseResponse(
                    unit=index, attempt=state.attempt, deadline=state.deadline, input=state.input
                )
                return _answer(lease)
        return web.Response(status=204)

    def fence(self, unit: int) -> None:
        """Take the unit away from its holder (as a departure would): its attempt is now stale."""
        state = self.units[unit]
        state.attempt += 1
        state.holder, state.deadline = None, None
        self._record("fence", unit, state.attempt, "")

    # -- test helpers -------------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 60.0) -> None:
        """Block until ``predicate()`` (checked after every event), or fail after ``timeout``."""
        give_up = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = give_up - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s; events: {self.events[-20:]}")
                self._changed.wait(min(left, 0.5))

    def kinds(self, unit: int | None = None) -> list[str]:
        with self._changed:
            return [kind for kind, u, _, _ in self.events if unit is None or u == unit]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def committed(self) -> int:
        return sum(1 for state in self.units if state.result is not None)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeDispatcher:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/jobs/{ns}/{name}/{action:lease}", self._handle)
            app.router.add_post("/v1/jobs/{ns}/{name}/units/{unit:\\d+}/{action}", self._handle)
            # A stop is a crash, not a graceful shutdown: a request in flight (a lease renewal)
            # must not hold it for aiohttp's default 60 s.
            self._runner = web.AppRunner(app, shutdown_timeout=0.5)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            await site.start()
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            ready.set()

        def run() -> None:
            assert self._loop is not None
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-dispatcher", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake dispatcher did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        runner, loop = self._runner, self._loop
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        loop.close()
        self._loop, self._runner = None, None
        self._record("down", -1, 0, "")

    def restart(self) -> None:
        self.stop()
        self.start()
        self._record("up", -1, 0, "")


# -- a worker wired to the fake ----------------------------------------------------------------
def make_worker(
    fake: FakeDispatcher, triton: FakeTriton, *, token: str = TOKEN, job: str = "job", **overrides: Any
) -> runner.Worker:
    """A worker of ``job`` on car-1 that talks to ``fake`` and ``triton`` (idle: it exits)."""
    config = runner.WorkerConfig(
        dispatcher_url=fake.url,
        namespace="demo",
        job=job,
        car="car-1",
        owner="alice",
        token=token,
        triton_url="unused:0",
        model=minilm.MODEL_NAME,
        batch_size=2,
        idle_exit_s=overrides.pop("idle_exit_s", 0.0),
        idle_poll_s=0.05,
        backoff_max_s=0.5,
        **overrides,
    )
    return runner.Worker(config, triton=triton)  # type: ignore[arg-type]


def run_in_thread(worker: runner.Worker) -> tuple[threading.Thread, list[int]]:
    """Run ``worker`` in a daemon thread; the list receives its exit code."""
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.run()), daemon=True)
    thread.start()
    return thread, codes
