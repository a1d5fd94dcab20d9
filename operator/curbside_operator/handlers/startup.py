"""kopf settings and the operator's background tasks, in one startup handler.

Why this exists: every framework default that matters at fleet scale is set here, each with
its reason (``docs/design.md``, "Fleet scale", has the numbers): kopf's bookkeeping uses our
annotation prefix, handler results are never stored in status, Events are posted only for
warnings, and there is one replica (standalone), so no peering writes. kopf's own finalizer is left at its
default: no handler here asks kopf for one (the job loop manages ``kube.jobs.FINALIZER``
itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import kopf
import prometheus_client
from aiohttp import web

from curbside_api import GROUP
from curbside_operator import metrics
from curbside_operator import settings as operator_settings
from curbside_operator.controllers import fleet as fleet_runtime
from curbside_operator.controllers import job_state, standings
from curbside_operator.controllers import jobs as jobs_runtime
from curbside_operator.dispatch import auth
from curbside_operator.dispatch.server import Dispatcher
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from curbside_operator.handlers import fleet
from curbside_operator.handlers import jobs as job_handlers
from curbside_operator.kube import errors, tokenreview
from curbside_operator.kube import fleet as kube
from curbside_operator.reconcile import placement, pods

log = logging.getLogger(__name__)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    s = settings
    # kopf's own state goes into annotations under our group, never into status, so the CRD
    # status schemas stay strict (no x-kubernetes-preserve-unknown-fields).
    s.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    s.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Every kopf.info() would be an Event write; at fleet scale only warnings are worth one.
    s.posting.level = logging.WARNING
    # Re-establish watches every 10 minutes even if the stream looks alive (kopf docs:
    # "server_timeout ... is the documented practice"; silent stalls are a known failure).
    s.watching.server_timeout = 600
    s.watching.client_timeout = 660
    # kopf retries a failed handler after 60 s by default; far too slow for departures.
    s.execution.default_backoff = 1.0
    s.queueing.error_delays = (0.5, 1, 2, 5, 10)

    config = operator_settings.OperatorConfig.from_env()
    client = kube.make_client()
    state = fleet_runtime.FleetState(config)
    loop = fleet_runtime.FleetLoop(state, client)
    authenticator = auth.TokenReviewAuthenticator(token_reviewer(client), audience=pods.DISPATCHER_AUDIENCE)
    ledger = SqliteLedger(config.ledger_path)
    dispatcher = Dispatcher(
        ledger,
        authenticator=authenticator,
        pod_name=placement.pod_name,
        cars=lambda name: standings.car_facts(state, name),
    )
    jobs = job_state.JobState()
    state.listeners.append(jobs.car_changed)
    job_loop = jobs_runtime.JobLoop(jobs, state, dispatcher, client, config)
    memo.config, memo.fleet, memo.client, memo.jobs = config, state, client, jobs
    memo.dispatcher, memo.ledger = dispatcher, ledger
    await job_loop.register_all()
    memo.runner = await _serve(dispatcher, config)
    memo.tasks = [
        asyncio.create_task(loop.run(), name="curbside-fleet-loop"),
        asyncio.create_task(_watch_leases(state, client, config), name="curbside-lease-watch"),
        asyncio.create_task(fleet.watch_vehiclenodes(state, client), name="curbside-vehiclenode-watch"),
        asyncio.create_task(fleet.watch_nodes(state, client), name="curbside-node-watch"),
        asyncio.create_task(job_handlers.watch_pods(jobs, client), name="curbside-pod-watch"),
        asyncio.create_task(job_loop.run(), name="curbside-job-loop"),
        asyncio.create_task(standings.StandingsSync(state, dispatcher).run(), name="curbside-standings"),
    ]
    metrics.LEDGER_SIZE.set_function(lambda: _file_bytes(config.ledger_path))
    if config.metrics_port:
        prometheus_client.start_http_server(
            config.metrics_port, addr=config.metrics_host, registry=metrics.REGISTRY
        )
    log.info("curbside operator started: %s", config.model_dump())


def _file_bytes(ledger_path: str) -> float:
    """Bytes of the ledger on disk: the SQLite file and its write-ahead log (0 for a missing one)."""
    total = 0
    for path in (ledger_path, ledger_path + "-wal"):
        with contextlib.suppress(OSError):
            total += os.stat(path).st_size
    return float(total)


def token_reviewer(client: Any) -> auth.Review:
    """Workers' tokens reviewed by the API server; no answer is ``auth.Unavailable`` (a 503)."""

    async def review(token: str, audiences: Sequence[str]) -> dict[str, Any]:
        try:
            return await tokenreview.review_token(client, token, audiences)
        except errors.KubeError as exc:
            log.warning("%s: answering workers 503 until it works", exc)
            raise auth.Unavailable(f"cannot check the token now: {exc}") from exc

    return review


ACCEPT_BACKLOG = 4096
"""Connections the kernel may hold for the dispatcher before it accepts them (capped by
``net.core.somaxconn``)."""


async def _serve(dispatcher: Dispatcher, config: operator_settings.OperatorConfig) -> web.AppRunner | None:
    """Serve the dispatcher's HTTP API (workers lease, renew, release and commit through it)."""
    if not config.dispatcher_port:
        return None
    runner = web.AppRunner(dispatcher.app(), access_log=None)
    await runner.setup()
    # Every car's worker may (re)connect at once: after an operator restart, or when a job
    # starts on hundreds of cars. The default backlog (128) overflows with 500 workers at 10,000
    # cars (the kernel falls back to SYN cookies; workers see connections reset).
    site = web.TCPSite(runner, config.dispatcher_host, config.dispatcher_port, backlog=ACCEPT_BACKLOG)
    await site.start()
    log.info("dispatcher listening on %s:%d", config.dispatcher_host, config.dispatcher_port)
    return runner


async def _watch_leases(
    state: fleet_runtime.FleetState, client: Any, config: operator_settings.OperatorConfig
) -> None:
    leases = kube.watch_leases(
        client, namespace=config.lease_namespace, on_listed=lambda: state.synced("Leases")
    )
    async for ev_type, name, renew in leases:
        state.lease_event(ev_type, name, renew)


@kopf.on.cleanup()
async def stop_tasks(memo: kopf.Memo, **_: Any) -> None:
    for task in getattr(memo, "tasks", []):
        task.cancel()
    for task in getattr(memo, "tasks", []):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    runner = getattr(memo, "runner", None)
    if runner is not None:
        await runner.cleanup()
    dispatcher = getattr(memo, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.close()
    ledger = getattr(memo, "ledger", None)
    if ledger is not None:
        ledger.close()
