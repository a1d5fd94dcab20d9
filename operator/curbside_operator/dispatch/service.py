"""The dispatcher's side that faces the operator: which jobs it serves, and every ledger call.

Why this exists: the ledger is one SQLite writer, so its calls run one at a time on one thread,
off the event loop, in turn with the workers' requests. The operator's loops need a handful
of ledger operations (register a job, expire overdue attempts, read summaries, fence a car
that left, forget a deleted job, read car standings); this class offers each as one async
method that runs on that thread, so no loop ever reaches the ledger itself or schedules work
on the thread by hand. ``server.Dispatcher`` adds the HTTP API the workers use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from curbside_api.v1alpha1 import inferencejob
from curbside_operator.dispatch import inputs, results
from curbside_operator.dispatch.ledger import EndedAttempt, Ledger, Validation
from curbside_operator.facts import Standing, Summary

T = TypeVar("T")


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


class LedgerService:
    """The ledger, the result stores and the registry of served jobs, on the ledger's thread."""

    def __init__(
        self, ledger: Ledger, *, stores: Callable[[str], results.ResultStore] = results.store_for_uri
    ) -> None:
        self._ledger = ledger
        self._stores = stores
        self._jobs: dict[tuple[str, str], RegisteredJob] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (ledger work) on the ledger's thread, in turn with every other ledger call."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def close(self) -> None:
        """Stop the ledger's thread once its calls are done (the ledger stays open: its owner
        closes it)."""
        self._pool.shutdown(wait=True)

    # -- the registry ------------------------------------------------------------------------
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
        field) for a job that cannot run. Publishes any result a crash left staged. Runs on the
        caller's thread: the operator's loops use ``register``.
        """
        key = f"{namespace}/{name}/{uid}"
        source = inputs.source_for(spec.input, dataset_items=dataset_items)
        store = self._stores(spec.output.uri)
        self._ledger.add_job(
            key,
            units=source.units,
            unit_timeout=timedelta(seconds=spec.unit_timeout_seconds),
            max_attempts=spec.max_attempts,
            replicas=spec.redundancy.replicas,
            quorum=spec.redundancy.quorum,
            distinct_owners=spec.redundancy.distinct_owners,
            validation=validation_for(spec),
        )
        for done in self._ledger.results(key):
            if not store.published(namespace, name, done.unit, output_hash=done.output_hash):
                store.publish(namespace, name, done.unit, output_hash=done.output_hash)
        per_car = spec.placement.max_units_per_car
        self._jobs[namespace, name] = RegisteredJob(
            namespace, name, key, source, store, per_car, spec.redundancy.tolerance
        )
        self.unpublish_revoked()  # what a crash left published after a quarantine
        return key

    def unpublish_revoked(self) -> None:
        """Take every result the ledger revoked (a quarantined car's units decided on trust) out
        of its served job's published output. Run it on the ledger's thread, after any ledger
        call that may quarantine a car, so no commit of the unit interleaves."""
        served = {job.key: job for job in self._jobs.values()}
        gone = [r for r in self._ledger.revoked() if r.job in served]
        for r in gone:
            job = served[r.job]
            job.store.remove(job.namespace, job.name, r.unit, output_hash=r.output_hash)
        if gone:
            self._ledger.unpublished(gone)

    def unregister_job(self, namespace: str, name: str) -> None:
        """Stop serving the job (the ledger keeps it until ``forget``)."""
        self._jobs.pop((namespace, name), None)

    def served(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._jobs

    # -- what the operator's loops ask -------------------------------------------------------
    async def register(self, namespace: str, name: str, uid: str, spec: inferencejob.InferenceJobSpec) -> str:
        """``register_job`` on the ledger's thread, after counting a dataset's items (a read of
        the object, so it too stays off the event loop)."""
        dataset = spec.input.dataset

        def register() -> str:
            items = inputs.count_items(dataset.uri) if dataset is not None else None
            return self.register_job(namespace, name, uid, spec, dataset_items=items)

        return await self._run(register)

    async def expire(self, now: datetime) -> list[EndedAttempt]:
        """End every live attempt whose deadline has passed (``Ledger.expire``)."""
        return await self._run(lambda: self._ledger.expire(now))

    async def summaries(self, keys: Iterable[str]) -> dict[str, Summary]:
        """The summary of each job (by ledger key, ``namespace/name/uid``) that is served now."""
        wanted = list(keys)

        def read() -> dict[str, Summary]:
            out: dict[str, Summary] = {}
            for key in wanted:
                namespace, name, _ = key.split("/", 2)
                if self.served(namespace, name):
                    out[key] = self._ledger.summary(key)
            return out

        return await self._run(read)

    async def fence(
        self, key: str, cars: Sequence[str], *, now: datetime, charge: bool
    ) -> list[EndedAttempt]:
        """End every live attempt of these cars in the job (they left), in one turn on the
        ledger's thread; ``charge`` counts them against ``maxAttempts``."""
        wanted = list(cars)

        def fence() -> list[EndedAttempt]:
            return [e for car in wanted for e in self._ledger.fence_car(key, car, now=now, charge=charge)]

        return await self._run(fence)

    async def forget(self, namespace: str, name: str, key: str, *, now: datetime) -> None:
        """A deleted job: stop serving it, fence its live attempts and drop it from the ledger."""
        self.unregister_job(namespace, name)

        def forget() -> None:
            if key in self._ledger.jobs():
                for attempt in self._ledger.live(key):
                    self._ledger.fence_car(key, attempt.car, now=now)
                self._ledger.delete_job(key)

        await self._run(forget)

    async def standings(self, since: int) -> tuple[int, list[Standing]]:
        """The cars whose record changed after change number ``since``, and the newest number."""
        return await self._run(lambda: self._ledger.standings(since))
