"""A tiny dispatcher speaking the worker protocol, for the worker's tests (aiohttp in a thread).

Why this exists: the worker's tests must show lease, renew, commit, release, fencing and
surviving a dispatcher restart over real HTTP, without the operator. The state (units,
attempts, commits, an event log) lives in this object, not in the HTTP server, so ``restart()``
behaves like the real dispatcher restarting on its durable ledger: same port, same state.

Rules, the same as the real one's contract: a unit is leased to one car at a time; an attempt
number only grows; renew/complete/release from anything but the live attempt get 409
``{"error": "Fenced"}``; a repeated completion with the same hash gets the same commit id
with ``duplicate: true``; a lease past its deadline can be handed to someone else; an
``outputHash`` that is not the SHA-256 of the result's canonical JSON (UTF-8, sorted keys, no
spaces) is a 400, as the real dispatcher answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web


@dataclasses.dataclass
class UnitState:
    input: dict[str, Any]
    attempt: int = 0
    holder: str | None = None
    deadline: datetime | None = None
    result: dict[str, Any] | None = None
    output_hash: str | None = None
    commit_id: str | None = None


class FakeDispatcher:
    def __init__(
        self,
        inputs: list[dict[str, Any]],
        *,
        token: str = "s3cret",
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

    def _live(self, unit: int, body: dict[str, Any]) -> UnitState | None:
        state = self.units[unit]
        ok = state.holder == body.get("car") and state.attempt == body.get("attempt") and state.result is None
        return state if ok else None

    async def _handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.unauthorized += 1
            return web.json_response({"error": "Unauthorized"}, status=401)
        if (request.match_info["ns"], request.match_info["name"]) != (self.namespace, self.name):
            return web.json_response({"error": "NotFound"}, status=404)
        body = await request.json()
        action = request.match_info["action"]
        now = datetime.now(UTC)
        if action == "lease":
            return self._lease(body, now)
        unit = int(request.match_info["unit"])
        state = self._live(unit, body)
        if state is None:
            duplicate = self.units[unit].output_hash
            if action == "complete" and duplicate is not None and duplicate == body.get("outputHash"):
                reply = {"commitId": self.units[unit].commit_id, "duplicate": True}
                self._record("duplicate", unit, int(body["attempt"]), body["car"])
                return web.json_response(reply)
            self._record(f"fenced-{action}", unit, int(body.get("attempt", -1)), str(body.get("car")))
            return web.json_response({"error": "Fenced"}, status=409)
        if action == "renew":
            state.deadline = now + self.unit_timeout
            self._record("renew", unit, state.attempt, body["car"])
            return web.json_response({"deadline": state.deadline.isoformat()})
        if action == "release":
            state.holder, state.deadline = None, None
            self._record(
                "release-error" if body.get("error") else "release", unit, state.attempt, body["car"]
            )
            return web.json_response({})
        text = json.dumps(body["result"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if hashlib.sha256(text.encode()).hexdigest() != body["outputHash"]:
            self._record("bad-hash", unit, state.attempt, body["car"])
            return web.json_response({"error": "BadRequest", "field": "outputHash"}, status=400)
        canonical = hashlib.sha256(body["outputHash"].encode()).hexdigest()[:16]
        state.result, state.output_hash, state.commit_id = body["result"], body["outputHash"], canonical
        self._record("complete", unit, state.attempt, body["car"])
        return web.json_response({"commitId": canonical, "duplicate": False})

    def _lease(self, body: dict[str, Any], now: datetime) -> web.Response:
        for index, state in enumerate(self.units):
            free = state.holder is None or (state.deadline is not None and state.deadline < now)
            if state.result is None and free:
                state.attempt += 1
                state.holder, state.deadline = body["car"], now + self.unit_timeout
                self._record("lease", index, state.attempt, body["car"])
                reply = {
                    "unit": index,
                    "attempt": state.attempt,
                    "deadline": state.deadline.isoformat().replace("+00:00", "Z"),
                    "input": state.input,
                }
                return web.json_response(reply)
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
