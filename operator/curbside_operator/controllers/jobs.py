"""The job loop: plans every InferenceJob each round and carries the plans out.

Why this exists: like the fleet side, kopf's ``on.event`` handlers only *record* jobs and pods
(in ``job_state.JobState``); one loop re-plans every job (``reconcile.jobs.plan_jobs``) on a
short tick and whenever a car that holds work changes, and carries the plan out: fence in the
ledger, delete pods, create pods, write a throttled status. Everything it does is idempotent,
so a SIGKILL at any moment is followed by the same plan again after the restart.

A job deleted while the operator was down still carries our finalizer: the loop fences its
cars, deletes its pods, forgets it in the ledger and only then lets it go.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from lightkube import AsyncClient

from curbside_api import conditions as conds
from curbside_api.v1alpha1 import inferencejob as ij
from curbside_operator import metrics, settings
from curbside_operator.controllers.fleet import FleetState
from curbside_operator.controllers.job_state import JobState
from curbside_operator.dispatch import inputs, results
from curbside_operator.dispatch.server import Dispatcher
from curbside_operator.facts import Summary
from curbside_operator.kube import errors
from curbside_operator.kube import jobs as kube
from curbside_operator.reconcile import jobs, pods, vehiclenode

log = logging.getLogger(__name__)
CREATE_BACKOFF_SECONDS = 15


@dataclasses.dataclass
class _Registered:
    key: str
    failure: tuple[str, str] | None


class JobLoop:
    """Plans every job each round and carries the plans out."""

    def __init__(
        self,
        state: JobState,
        fleet: FleetState,
        dispatcher: Dispatcher,
        client: AsyncClient,
        config: settings.OperatorConfig,
    ) -> None:
        self.state, self.fleet, self.dispatcher, self.client, self.config = (
            state,
            fleet,
            dispatcher,
            client,
            config,
        )
        state.pod_deleted.append(dispatcher.pod_deleted)  # a deleted pod's token stops working
        self.registered: dict[str, _Registered] = {}
        self.last_status: dict[str, datetime] = {}
        self.create_failed: dict[str, float] = {}
        """Job key -> when a pod creation of it last failed (placement holds off for a while)."""
        self.started = time.monotonic()
        self.writes = asyncio.Semaphore(config.write_concurrency)
        """Pod creates and deletes in flight. A round may place thousands of pods: started all at
        once, they wait for the client's connection pool until it times out (at 10,000 cars,
        tens of thousands of failed creates in minutes, and the job holds placement after each)."""

    async def register_all(self) -> None:
        """Register every job there is before the dispatcher serves: a worker that asks about its
        job right after an operator restart must not be told the job does not exist."""
        try:
            listed = await kube.list_jobs(self.client)
        except errors.KubeError as exc:
            log.warning("%s; jobs are registered as their events arrive", exc)
            return
        for body in listed:
            self.state.job_event(None, body)
        for job in list(self.state.jobs.values()):
            await self._prepare(job)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.state.wake.wait(), timeout=self.config.job_tick_seconds)
            self.state.wake.clear()
            try:
                await self.step()
            except Exception:
                log.exception("job loop round failed; trying again")
                await asyncio.sleep(1.0)

    async def step(self) -> None:
        cfg, fleet = self.config, self.fleet
        now = fleet.clock()
        warm = time.monotonic() - self.started >= cfg.car_lease_grace_seconds
        views: list[jobs.JobView] = []
        for job in list(self.state.jobs.values()):
            try:
                view = await self._prepare(job)
            except Exception:  # one job's trouble must never stop the others
                log.exception(
                    "preparing InferenceJob %s/%s; next round", job.metadata.namespace, job.metadata.name
                )
                continue
            if view is not None:
                views.append(view)
        expired = await self.dispatcher.expire(now)
        metrics.UNITS_EXPIRED.inc(len(expired))
        summaries = await self.dispatcher.summaries(
            v.key for v in views if v.failure is None and not v.deleting
        )
        grace = cfg.car_lease_grace
        ready = {
            name: vehiclenode.lease_fresh(fleet.leases.get(name), now=now, grace=grace)
            or not warm
            or fleet.partition
            for name in fleet.cars
        }
        pod_list = list(self.state.pods.values())
        if not warm:  # the fleet picture is still filling in: a car not yet seen is not gone
            pod_list = [p for p in pod_list if p.car in fleet.cars]
        plans = jobs.plan_jobs(
            [v for v in views if not v.deleting],
            pod_list,
            fleet.cars,
            ready,
            summaries,
            now=now,
            departure_lead=timedelta(seconds=cfg.departure_lead_seconds),
            expected_unit=timedelta(seconds=cfg.expected_unit_seconds),
            slots_per_car=cfg.slots_per_car,
            status_interval=timedelta(seconds=cfg.status_interval_seconds),
            last_status=self.last_status,
            explain=warm,
        )
        by_key = {v.key: v for v in views}
        outcomes = await asyncio.gather(
            *(self._apply(by_key[k], plan, now) for k, plan in plans.items()), return_exceptions=True
        )
        for key, outcome in zip(plans, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("carrying out the plan of %s: %r; next round", key, outcome)
        await asyncio.gather(*(self._finalize(v, now) for v in views if v.deleting))
        self._export(summaries)

    async def _prepare(self, job: ij.InferenceJob) -> jobs.JobView | None:
        """Register a job with the dispatcher once (or learn why it cannot run); add our finalizer."""
        view = jobs.JobView(job)
        if view.deleting:
            return view if kube.FINALIZER in job.metadata.finalizers else None
        if kube.FINALIZER not in job.metadata.finalizers:
            try:
                stored = await kube.set_finalizers(
                    self.client,
                    view.namespace,
                    view.name,
                    [*job.metadata.finalizers, kube.FINALIZER],
                    resource_version=job.metadata.resource_version,
                )
                if stored is not None:
                    self.state.job_event("MODIFIED", stored)
            except errors.KubeError as exc:
                log.info("adding our finalizer to %s: %s (next round)", view.key, exc)
        done = self.registered.get(view.key)
        if done is None:
            done = self.registered[view.key] = _Registered(view.key, await self._register(view))
        failed_at = self.create_failed.get(view.key)
        hold = failed_at is not None and time.monotonic() - failed_at < CREATE_BACKOFF_SECONDS
        return dataclasses.replace(view, failure=done.failure, hold=hold)

    async def _register(self, view: jobs.JobView) -> tuple[str, str] | None:
        spec = view.job.spec
        if spec.model.repository is None and spec.model.name not in self.config.model_names:
            known = ", ".join(sorted(self.config.model_names))
            return (
                jobs.REASON_MODEL_NOT_FOUND,
                f"spec.model.name: no model {spec.model.name!r} (known: {known})",
            )
        try:
            await self.dispatcher.register(view.namespace, view.name, view.job.metadata.uid or "", spec)
        except inputs.UnsplittableInput as exc:
            return "UnsplittableInput", str(exc)
        except results.UnsupportedOutput as exc:
            return "UnsupportedOutput", str(exc)
        return None

    async def _apply(self, view: jobs.JobView, plan: jobs.JobPlan, now: datetime) -> None:
        spec = view.job.spec
        if plan.fence and spec.on_node_departure is not ij.DeparturePolicy.WAIT_FOR_DEADLINE:
            charge = spec.on_node_departure is ij.DeparturePolicy.FAIL_ATTEMPT
            await self.dispatcher.fence(view.key, [car for car, _ in plan.fence], now=now, charge=charge)
        for car, reason in plan.fence:
            if reason in jobs.NOT_DEPARTURES:
                continue
            metrics.DEPARTURES.labels(reason=reason).inc()
            observed = self.fleet.cars[car].status.observed_at if car in self.fleet.cars else None
            if observed is not None and reason != "Offline" and now - observed < timedelta(minutes=5):
                metrics.DEPARTURE_REACTION.observe(max(0.0, (now - observed).total_seconds()))
        await asyncio.gather(*(self._delete(p) for p in plan.delete))
        await asyncio.gather(*(self._create(view, car) for car in plan.create))
        for type_, reason, message in plan.events:
            await kube.post_event(
                self.client,
                namespace=view.namespace,
                name=view.name,
                uid=view.job.metadata.uid or "",
                type=type_,
                reason=reason,
                message=message,
            )
        if plan.status is not None:
            try:
                stored = await kube.patch_job_status(self.client, view.namespace, view.name, plan.status)
                self.last_status[view.key] = now
                self.state.job_event("MODIFIED", stored)  # unless the user's newer edit came meanwhile
            except errors.KubeError as exc:
                log.warning("%s (next round)", exc)

    async def _delete(self, pod: jobs.PodView) -> None:
        try:
            async with self.writes:
                await kube.delete_pod(self.client, pod.namespace, pod.name)
            if (pod.namespace, pod.name) in self.state.pods:  # not if its DELETED came meanwhile
                self.state.put_pod((pod.namespace, pod.name), dataclasses.replace(pod, deleting=True))
        except errors.KubeError as exc:
            log.warning("%s (next round)", exc)

    async def _create(self, view: jobs.JobView, car: str) -> None:
        try:
            # The body is built under the write limit too: built before it, a round that places
            # 7,000 pods at once would hold 7,000 bodies while they wait their turn (about 8 KB
            # each: 57 MiB more RSS in the round's first seconds, see bench/pod_create_memory.py).
            async with self.writes:
                body = self._pod_body(view, car)
                created = await kube.create_pod(self.client, body)
            if created:
                metrics.PLACEMENTS.inc()
            found = jobs.PodView(view.namespace, body["metadata"]["name"], view.name, car)
            if (view.namespace, found.name) not in self.state.pods:  # its watch event may be first
                self.state.put_pod((view.namespace, found.name), found)
            self.create_failed.pop(view.key, None)
        except errors.KubeError as exc:
            self.create_failed[view.key] = time.monotonic()
            log.warning("%s (placement of this job holds for %ds)", exc, CREATE_BACKOFF_SECONDS)

    def _pod_body(self, view: jobs.JobView, car: str) -> dict[str, Any]:
        vehicle = self.fleet.cars.get(car)
        return pods.pod_body(
            view.job,
            car,
            owner=vehicle.spec.vehicle.owner if vehicle else "",
            dispatcher_url=self.config.dispatcher_url,
            worker_image=self.config.worker_image,
        )

    async def _finalize(self, view: jobs.JobView, now: datetime) -> None:
        """A deleted job: fence its cars, delete its pods, forget it, then let it go."""
        key = view.key
        own = [p for p in self.state.pods.values() if (p.namespace, p.job) == (view.namespace, view.name)]
        await self.dispatcher.forget(view.namespace, view.name, key, now=now)
        await asyncio.gather(*(self._delete(p) for p in own if not p.deleting))
        rest = [f for f in view.job.metadata.finalizers if f != kube.FINALIZER]
        try:
            await kube.set_finalizers(
                self.client,
                view.namespace,
                view.name,
                rest,
                resource_version=view.job.metadata.resource_version,
            )
            self.registered.pop(key, None)
            self.last_status.pop(key, None)
        except errors.KubeError as exc:
            log.info("releasing %s: %s (next round)", key, exc)

    def _export(self, summaries: Mapping[str, Summary]) -> None:
        phases = {"Running": 0, "Succeeded": 0, "Failed": 0}
        for job in self.state.jobs.values():
            c = job.status.conditions
            phase = (
                "Succeeded"
                if conds.is_true(c, conds.SUCCEEDED)
                else "Failed"
                if conds.is_true(c, conds.FAILED)
                else "Running"
            )
            phases[phase] += 1
        for phase, n in phases.items():
            metrics.JOBS.labels(phase=phase).set(n)
        metrics.UNITS.clear()
        metrics.REPLICATION_OVERHEAD.clear()
        for key, s in summaries.items():
            ns, name, _ = key.split("/", 2)
            metrics.REPLICATION_OVERHEAD.labels(namespace=ns, job=name).set(s.overhead)
            for state, n in (
                ("pending", s.pending),
                ("running", s.running),
                ("succeeded", s.succeeded),
                ("failed", s.failed),
            ):
                metrics.UNITS.labels(namespace=ns, job=name, state=state).set(n)
