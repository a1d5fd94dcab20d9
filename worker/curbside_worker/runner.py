"""The worker's loop: lease a unit, infer it through Triton, commit it; stop cleanly on request.

Why this exists: this is the part of Curbside that does the work on a car (``docs/design.md``,
"Data flow" and "On the car"), and every rule of the data plane shows up here as a line of
behaviour:

- Nothing is leased before Triton is ready (a leased unit should not wait for a server).
- While a unit runs, a renewer thread keeps its lease alive (at a third of the time left); a
  409 means the unit was taken away (the car was fenced, the deadline passed): the worker
  cancels its requests and drops the unit, since its result could never count.
- The result is canonical JSON; its sha256 is the ``outputHash``. Completion is retried through
  dispatcher outages until it is answered: a replay gets the same answer, so retrying is safe.
- The dispatcher being down (restart, network) is a pause, not an error: every call backs off
  exponentially with full jitter (``dispatcher.Backoff``) and tries again.
- ``stop`` (SIGTERM from the car's interlock or the kubelet) means *finish nothing new*: cancel
  in-flight requests, release the lease so the unit goes straight back to pending (instead of
  waiting out its deadline), and return.

Exit codes: 0 stopped, out of work, done, or the job is gone; 2 Triton never became ready;
3 the unit's input was unusable; 4 the dispatcher refused our token; 5 the dispatcher called
a request of ours bad (400: a bug on one side; the pod fails visibly instead of looping).
Units abandoned for bad input or a rejected result are released *with an error*, so the
attempt counts against the job's ``maxAttempts`` and a hopeless job ends ``Failed``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from curbside_worker import dispatcher as dp
from curbside_worker import metrics
from curbside_worker.token import DispatcherToken
from curbside_worker.triton import Aborted, TritonClient, TritonUnavailable
from curbside_worker.workloads import catalog

log = logging.getLogger(__name__)

EXIT_OK, EXIT_TRITON, EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_REJECTED = 0, 2, 3, 4, 5


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    dispatcher_url: str
    namespace: str
    job: str
    car: str
    owner: str
    token: str
    """A fixed bearer token; empty when ``token_file`` holds it (a projected, rotating token)."""
    triton_url: str
    model: str
    batch_size: int = 8
    inflight: int = 2
    max_units: int | None = None
    idle_exit_s: float | None = None
    idle_poll_s: float = 1.0
    ready_timeout_s: float = 300.0
    renew_default_s: float = 10.0
    backoff_max_s: float = 5.0
    token_file: str | None = None


@dataclasses.dataclass
class Stats:
    committed: int = 0
    duplicates: int = 0
    fenced: int = 0
    released: int = 0
    items: int = 0
    last_commit: str = ""


class _Renewer(threading.Thread):
    """Keeps one lease alive until ``finish()``; sets ``fenced`` when the dispatcher says 409."""

    def __init__(
        self, client: dp.DispatcherClient, lease: dp.Lease, *, default_s: float, backoff_max_s: float
    ) -> None:
        super().__init__(name=f"renew-unit-{lease.unit}", daemon=True)
        self.client, self.lease, self.default_s = client, lease, default_s
        self.deadline = lease.deadline
        self.fenced = threading.Event()
        self._done = threading.Event()
        self._backoff = dp.Backoff(initial=0.2, maximum=backoff_max_s)

    def _interval(self) -> float:
        if self.deadline is None:
            return self.default_s
        # A third of the time left, but never a busy loop (a clock behind the dispatcher's makes
        # every deadline look past) and never so rarely that one lost renewal loses the lease.
        left = (self.deadline - datetime.now(UTC)).total_seconds()
        return min(max(left / 3.0, 0.5), self.default_s * 6)

    def run(self) -> None:
        wait = self._interval()
        while not self._done.wait(wait):
            try:
                self.deadline = self.client.renew(self.lease) or self.deadline
                self._backoff.reset()
                wait = self._interval()
            except (dp.Fenced, dp.UnknownJob) as error:
                log.warning("unit %d attempt %d fenced: %s", self.lease.unit, self.lease.attempt, error)
                self.fenced.set()
                return
            except dp.DispatcherError as error:
                wait = self._backoff.next()
                log.info("renew unit %d failed (%s); again in %.1fs", self.lease.unit, error, wait)

    def finish(self) -> None:
        self._done.set()
        self.join(timeout=15.0)


class Worker:
    """Runs units of one job on one car until stopped, out of work, or ``max_units`` done."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        stop: threading.Event | None = None,
        dispatcher: dp.DispatcherClient | None = None,
        triton: TritonClient | None = None,
    ) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        self.workload = catalog.workload(config.model)
        self.dispatcher = dispatcher or dp.DispatcherClient(
            config.dispatcher_url,
            namespace=config.namespace,
            name=config.job,
            car=config.car,
            owner=config.owner,
            token=DispatcherToken(token=config.token or None, path=config.token_file),
        )
        self.triton = triton or TritonClient(config.triton_url)
        self.stats = Stats()
        self._backoff = dp.Backoff(initial=0.2, maximum=config.backoff_max_s)

    def run(self) -> int:
        try:
            self.triton.wait_ready([self.config.model], timeout=self.config.ready_timeout_s, stop=self.stop)
        except Aborted:
            return EXIT_OK
        except (TimeoutError, TritonUnavailable) as error:
            log.error("%s", error)
            return EXIT_TRITON
        log.info(
            "Triton ready at %s; working on %s/%s",
            self.config.triton_url,
            self.config.namespace,
            self.config.job,
        )
        idle_since = time.monotonic()
        while not self.stop.is_set():
            if self.config.max_units is not None and self.stats.committed >= self.config.max_units:
                return EXIT_OK
            try:
                lease = self.dispatcher.lease()
            except (dp.UnknownJob, dp.Refused, dp.BadRequest) as error:
                log.error("dispatcher: %s", error)
                if isinstance(error, dp.UnknownJob):
                    return EXIT_OK
                return EXIT_REFUSED if isinstance(error, dp.Refused) else EXIT_REJECTED
            except dp.DispatcherError as error:
                self._pause(f"lease: {error}")
                continue
            self._backoff.reset()
            if lease is None:
                if (
                    self.config.idle_exit_s is not None
                    and time.monotonic() - idle_since > self.config.idle_exit_s
                ):
                    log.info("no work for %.0fs; exiting", self.config.idle_exit_s)
                    return EXIT_OK
                self.stop.wait(self.config.idle_poll_s)
                continue
            code = self.work(lease)
            if code != EXIT_OK:
                return code
            idle_since = time.monotonic()
        return EXIT_OK

    @property
    def dispatcher_failures(self) -> int:
        """Dispatcher calls that failed in a row (0 once it answers again)."""
        return self._backoff.failures

    def _pause(self, why: str) -> None:
        wait = self._backoff.next()
        log.warning("dispatcher unavailable (%s); retrying in %.1fs", why, wait)
        self.stop.wait(wait)

    def work(self, lease: dp.Lease) -> int:
        """One unit, from lease to commit (or release, or drop)."""
        log.info("leased unit %d attempt %d", lease.unit, lease.attempt)
        renewer = _Renewer(
            self.dispatcher,
            lease,
            default_s=self.config.renew_default_s,
            backoff_max_s=self.config.backoff_max_s,
        )
        renewer.start()
        try:
            try:
                unit = self.workload.prepare(lease.input)
            except catalog.BadInput as error:
                log.error("unit %d: bad input: %s", lease.unit, error)
                self._release(lease, error=f"bad input: {error}")
                metrics.UNITS.labels("bad_input").inc()
                return EXIT_BAD_INPUT
            started = time.monotonic()
            result = self._infer(unit, renewer)
            if result is None:
                if renewer.fenced.is_set():
                    self.stats.fenced += 1
                    metrics.UNITS.labels("fenced").inc()
                else:
                    self._release(lease)
                    metrics.UNITS.labels("released").inc()
                return EXIT_OK
            metrics.INFERENCE_DURATION.observe(time.monotonic() - started)
            self.stats.items += unit.count
            # The result names its unit: the dispatcher refuses one that names another (an old
            # result sent again), so identical replays from two cars cannot form a quorum.
            return self._commit(lease, {**result, "unit": lease.unit})
        finally:
            renewer.finish()

    def _infer(self, unit: catalog.UnitInput, renewer: _Renewer) -> dict[str, Any] | None:
        """The unit's result, or None when stopped or fenced first. Triton outages are waited out."""
        backoff = dp.Backoff(initial=0.5, maximum=self.config.backoff_max_s)
        while True:
            try:
                outputs = self.triton.infer_batches(
                    self.config.model,
                    self.workload.batches(unit, batch_size=self.config.batch_size),
                    outputs=self.workload.outputs,
                    inflight=self.config.inflight,
                    abort=lambda: self.stop.is_set() or renewer.fenced.is_set(),
                )
                return self.workload.result(unit, outputs)
            except Aborted:
                return None
            except TritonUnavailable as error:
                metrics.TRITON_ERRORS.inc()
                wait = backoff.next()
                log.warning("Triton unavailable (%s); retrying the unit in %.1fs", error, wait)
                if self.stop.wait(wait) or renewer.fenced.is_set():
                    return None

    def _commit(self, lease: dp.Lease, result: dict[str, Any]) -> int:
        digest = catalog.output_hash(result)
        while True:
            try:
                reply = self.dispatcher.complete(lease, result=result, output_hash=digest)
            except (dp.Fenced, dp.UnknownJob) as error:
                log.warning("unit %d attempt %d: result refused: %s", lease.unit, lease.attempt, error)
                self.stats.fenced += 1
                metrics.UNITS.labels("fenced").inc()
                return EXIT_OK
            except (dp.BadRequest, dp.Refused) as error:
                log.error("unit %d attempt %d: result rejected: %s", lease.unit, lease.attempt, error)
                self._release(lease, error=f"result rejected: {error}")
                metrics.UNITS.labels("rejected").inc()
                return EXIT_REJECTED
            except dp.DispatcherError as error:
                if self.stop.is_set():
                    log.warning("stopping with unit %d uncommitted (%s); releasing", lease.unit, error)
                    self._release(lease)
                    metrics.UNITS.labels("released").inc()
                    return EXIT_OK
                self._pause(f"complete: {error}")
                continue
            self._backoff.reset()
            self.stats.committed += 1
            metrics.UNITS.labels("committed").inc()
            self.stats.duplicates += int(reply.duplicate)
            self.stats.last_commit = reply.commit_id
            log.info("committed unit %d attempt %d as %s", lease.unit, lease.attempt, reply.commit_id)
            return EXIT_OK

    def _release(self, lease: dp.Lease, *, error: str | None = None) -> None:
        try:
            self.dispatcher.release(lease, error=error)
            self.stats.released += 1
            log.info("released unit %d attempt %d", lease.unit, lease.attempt)
        except dp.DispatcherError as error:
            log.warning("release of unit %d failed (%s); its lease will expire", lease.unit, error)

    def close(self) -> None:
        self.dispatcher.close()
        self.triton.close()
