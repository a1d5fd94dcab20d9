"""The operator's live picture of the fleet, and the one loop that acts on it.

Why this exists: at 10,000 cars, kopf's change-detecting handlers would cost up to four
patches per event (``docs/design.md``, "Fleet scale"). Instead, our own watches only *record*
what they see here (no writes), and a single loop reconciles the cars that need it: those
whose object changed, whose Lease just went stale, and every car on a slow sweep.
It writes only what ``reconcile.vehiclenode`` says differs, so an unchanged car costs the
operator nothing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from lightkube import AsyncClient

from curbside_api import base, sharing
from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator import metrics, settings
from curbside_operator.controllers import workqueue
from curbside_operator.kube import errors, watch
from curbside_operator.kube import fleet as kube
from curbside_operator.reconcile import fleet, vehiclenode

log = logging.getLogger(__name__)


def hold_car(body: Mapping[str, Any]) -> vn.VehicleNode:
    """A VehicleNode as the fleet holds it: parsed, its fields-sets shared with other cars' (so it
    is read-only: ``api.sharing``); raises ``InvalidSpecError`` like ``from_body``."""
    return sharing.share(vn.VehicleNode.from_body(body))


def node_view(body: Mapping[str, Any]) -> vehiclenode.NodeView:
    spec = body.get("spec") or {}
    meta = body.get("metadata") or {}
    return vehiclenode.NodeView(
        taints=tuple(spec.get("taints") or ()),
        labels=dict(meta.get("labels") or {}),
        resource_version=meta.get("resourceVersion"),
    )


SOURCES = frozenset({"VehicleNodes", "Nodes", "Leases"})
"""What the operator lists before it judges any car (``FleetState.ready``)."""


class FleetState:
    """Cars, their Nodes and Leases as last seen; which cars need a look."""

    def __init__(self, config: settings.OperatorConfig, *, clock: Callable[[], datetime] = kube.now) -> None:
        self.config = config
        self.clock = clock
        self.cars: dict[str, vn.VehicleNode] = {}
        self.nodes: dict[str, vehiclenode.NodeView] = {}
        self.leases: dict[str, vehiclenode.LeaseView] = {}
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()
        self.deadlines: list[tuple[datetime, str]] = []
        self.partition = False
        self.enroll: dict[str, dict[str, Any]] = {}
        self.listeners: list[Callable[[str], None]] = []
        """Called with a car's name whenever its report or Lease freshness changes (the job loop)."""
        self.records: dict[str, tuple[vn.Trust, vn.Credit]] = {}
        """The ledger's record of each car (``handlers.standings``), written into its status."""
        self.listed: set[str] = set()
        """Which of ``SOURCES`` have been listed whole since the operator started."""

    def synced(self, source: str) -> None:
        """``source`` (one of ``SOURCES``) has been listed: its watch now has every object."""
        self.listed.add(source)
        self.wake.set()

    @property
    def ready(self) -> bool:
        """May cars be judged? Only once every source is listed, like an informer's HasSynced."""
        return self.listed >= SOURCES

    def touch(self, name: str) -> None:
        """Have the car reconciled (and the job loop told) soon."""
        self._touch(name)

    def _touch(self, name: str) -> None:
        self.dirty.add(name)
        self.wake.set()
        for listener in self.listeners:
            listener(name)

    def car_event(self, ev_type: str | None, name: str, body: Mapping[str, Any]) -> None:
        if ev_type == "DELETED":
            self.cars.pop(name, None)
            return
        held = self.cars.get(name)
        if held is not None and (_older(body, held) or _same(body, held)):
            # Older: from before our own write's answer, we already know better. The same
            # version: our own write's echo (its answer is held) or a re-list; nothing new.
            return
        try:
            self.cars[name] = hold_car(body)
        except base.InvalidSpecError as exc:
            log.warning("ignoring VehicleNode %s: %s", name, exc)
            self.cars.pop(name, None)
            return
        self.enroll.pop(name, None)
        self._touch(name)

    def write_answered(self, name: str, stored: Mapping[str, Any]) -> None:
        """Hold the object our status write returned, unless a newer version came meanwhile.

        The agent may report while our write is in flight: if its report landed after ours,
        its watch event (newer) can arrive before our answer (older). Taking the answer then
        would forget the report, and nothing would bring it back until the car's next report.
        """
        held = self.cars.get(name)
        if held is not None and _older(stored, held):
            return
        self.cars[name] = hold_car(stored)
        for listener in self.listeners:  # the job loop, as for an event: the verdict changed
            listener(name)

    def node_answered(self, name: str, stored: Mapping[str, Any]) -> None:
        """Hold the Node our write returned, unless a newer version came meanwhile (as above)."""
        view = node_view(stored)
        if not self._older_node(name, view):
            self.nodes[name] = view

    def _older_node(self, name: str, view: vehiclenode.NodeView) -> bool:
        held = self.nodes.get(name)
        return held is not None and watch.older(view.resource_version, held.resource_version)

    def node_event(self, ev_type: str | None, name: str, body: Mapping[str, Any]) -> None:
        if ev_type == "DELETED":
            self.nodes.pop(name, None)
            return
        view = node_view(body)
        # An event older than our own write's answer: we already know better.
        if not self._older_node(name, view) and self.nodes.get(name) != view:
            self.nodes[name] = view
            if name in self.cars:
                self._touch(name)
        if name not in self.cars:
            meta = body.get("metadata") or {}
            desired = vehiclenode.enrollment_body(
                name, labels=meta.get("labels") or {}, annotations=meta.get("annotations") or {}
            )
            if desired is not None:
                self.enroll[name] = desired
                self.wake.set()

    def lease_event(self, ev_type: str, name: str, renew: datetime | None) -> None:
        grace = self.config.car_lease_grace
        old = self.leases.get(name)
        if ev_type == "DELETED":
            self.leases.pop(name, None)
            self._touch(name)
            return
        new = vehiclenode.LeaseView(renew_time=renew)
        self.leases[name] = new
        now = self.clock()
        if vehiclenode.lease_fresh(old, now=now, grace=grace) != vehiclenode.lease_fresh(
            new, now=now, grace=grace
        ):
            self._touch(name)
        deadline = vehiclenode.next_deadline(new, grace=grace)
        if deadline is not None:
            heapq.heappush(self.deadlines, (deadline, name))

    def expired(self, now: datetime) -> set[str]:
        """Cars whose Lease went stale since the last look (pops the deadline heap)."""
        out = set()
        while self.deadlines and self.deadlines[0][0] < now:
            _, name = heapq.heappop(self.deadlines)
            lease = self.leases.get(name)
            if not vehiclenode.lease_fresh(lease, now=now, grace=self.config.car_lease_grace):
                out.add(name)
        return out

    def take_dirty(self) -> set[str]:
        names, self.dirty = self.dirty, set()
        return names


ENROLL = "enroll/"
"""Queue keys of cars to enroll (create a VehicleNode for) rather than reconcile."""


class FleetLoop:
    """Reconciles cars from ``FleetState`` and writes the differences.

    ``write_concurrency`` workers take cars from one ``WorkQueue`` and judge each car when
    they take it, with the clock and the facts of that moment: a car never waits with a
    judgement already made (``controllers.workqueue`` says why that matters at 10,000 cars).
    """

    def __init__(self, state: FleetState, client: AsyncClient) -> None:
        self.state = state
        self.client = client
        self.queue = workqueue.WorkQueue()
        self.enrolling: dict[str, dict[str, Any]] = {}
        self.last_sweep = 0.0
        self.status_writes = self.node_writes = 0

    async def run(self) -> None:
        cfg = self.state.config
        workers = [
            asyncio.create_task(self.work(), name=f"curbside-fleet-worker-{i}")
            for i in range(cfg.write_concurrency)
        ]
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.state.wake.wait(), timeout=cfg.tick_seconds)
                self.state.wake.clear()
                self.step()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def step(self) -> None:
        """Queue the cars that need a look: changed, Lease just stale, every car on a sweep."""
        state, cfg = self.state, self.state.config
        if not state.ready:
            # Until Leases, Nodes and VehicleNodes are all listed, a car without its Lease
            # yet would look silent: judging then would write 10,000 wrong verdicts.
            return
        now = state.clock()
        self._assess(now)
        for name in state.take_dirty() | state.expired(now):
            self.queue.add(name)
        if time.monotonic() - self.last_sweep >= cfg.sweep_seconds:
            for name in state.cars:
                self.queue.add(name, urgent=False)
            self.last_sweep = time.monotonic()
            self._export_gauges()
        for name, body in state.enroll.items():
            self.enrolling[name] = body
            self.queue.add(ENROLL + name)
        state.enroll = {}
        urgent, later = self.queue.waiting()
        metrics.FLEET_QUEUE.labels(priority="changed").set(urgent)
        metrics.FLEET_QUEUE.labels(priority="sweep").set(later)

    async def work(self) -> None:
        """One worker: take a key, act on it, forever; a failure costs the key, not the worker."""
        while True:
            key = await self.queue.get()
            try:
                if key.startswith(ENROLL):
                    await self._enroll(key.removeprefix(ENROLL))
                else:
                    await self._reconcile(key)
            except Exception:
                log.exception("fleet worker on %s", key)
                if not key.startswith(ENROLL):
                    self.state.dirty.add(key)
            finally:
                self.queue.done(key)

    async def drain(self) -> None:
        """Wait until every queued car is looked at and written (tests and shutdown)."""
        await self.queue.join()

    def _assess(self, now: datetime) -> None:
        cfg = self.state.config
        health = fleet.assess(
            self.state.leases.values(),
            now=now,
            grace=cfg.partition_silence,
            threshold=cfg.partition_threshold,
            min_silent=cfg.partition_min_silent,
        )
        metrics.SILENT_CARS.set(health.silent)
        if health.partition_suspected != self.state.partition:
            self.state.partition = health.partition_suspected
            metrics.PARTITION.set(1 if health.partition_suspected else 0)
            if health.partition_suspected:
                log.error("SuspectedControlPlanePartition: %s; holding liveness decisions", health.describe())
            else:
                log.warning("fleet heard from again: %s; re-evaluating every car", health.describe())
                self.state.dirty |= set(self.state.cars)

    def _export_gauges(self) -> None:
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        reasons: collections.Counter[str] = collections.Counter({str(r): 0 for r in vn.IneligibleReason})
        for car in self.state.cars.values():
            op = car.status.operator
            counts[(str(car.status.state or "Unknown"), str(bool(op and op.eligible)).lower())] += 1
            if op is not None and not op.eligible:
                reasons.update(str(r) for r in op.reasons)
        metrics.VEHICLENODES.clear()
        for (st, eligible), n in counts.items():
            metrics.VEHICLENODES.labels(state=st, eligible=eligible).set(n)
        for reason, n in reasons.items():  # every known reason, 0 included: a steady set of series
            metrics.INELIGIBLE.labels(reason=reason).set(n)
        urgent, later = self.queue.waiting()
        # One line per sweep (30 s): what a stalled fleet is doing, without --verbose.
        eligible_cars = sum(n for (_, flag), n in counts.items() if flag == "true")
        top = ", ".join(f"{r} {n}" for r, n in reasons.most_common(3) if n)
        log.info(
            "fleet: %d cars, %d eligible (not: %s), %d Leases; queue: %d changed, %d sweep, "
            "%d enrolling, %d at work; %d status and %d Node writes so far%s",
            len(self.state.cars),
            eligible_cars,
            top or "-",
            len(self.state.leases),
            urgent,
            later,
            len(self.enrolling),
            len(self.queue.busy()),
            self.status_writes,
            self.node_writes,
            "; control-plane partition suspected" if self.state.partition else "",
        )

    async def _reconcile(self, name: str) -> None:
        state = self.state
        car = state.cars.get(name)
        if car is None:
            return
        started = time.perf_counter()
        now = state.clock()
        plan = vehiclenode.reconcile_car(
            car,
            lease=state.leases.get(name),
            node=state.nodes.get(name),
            now=now,
            grace=state.config.car_lease_grace,
            partition_suspected=state.partition,
            expected_unit_seconds=state.config.expected_unit_seconds,
            trust=record[0] if (record := state.records.get(name)) else None,
            credit=record[1] if record else None,
        )
        try:
            if plan.status_patch is not None:
                stored = await kube.patch_vehiclenode_status(self.client, name, plan.status_patch)
                metrics.API_WRITES.labels(resource="vehiclenodes/status", verb="patch").inc()
                self.status_writes += 1
                if vn.IneligibleReason.LEASE_EXPIRED in plan.reasons and not _had_reason(car):
                    metrics.LEASE_EXPIRIES.inc()
                state.write_answered(name, stored)
                _observe_reaction(car, now)
            if plan.node_patch is not None:
                node = await kube.patch_node(self.client, name, plan.node_patch)
                metrics.API_WRITES.labels(resource="nodes", verb="patch").inc()
                self.node_writes += 1
                state.node_answered(name, node.to_dict())
        except errors.NotFoundError:
            log.info("car %s disappeared while reconciling", name)
        except errors.KubeError as exc:
            metrics.RECONCILE_ERRORS.labels(kind="VehicleNode", reason=type(exc).__name__).inc()
            log.warning("reconciling car %s: %s (will retry)", name, exc)
            state.dirty.add(name)
        finally:
            metrics.RECONCILE_DURATION.labels(kind="VehicleNode").observe(time.perf_counter() - started)

    async def _enroll(self, name: str) -> None:
        """Create the VehicleNode of a car Node that has none (AlreadyExists is success)."""
        body = self.enrolling.pop(name, None)
        if body is None or name in self.state.cars:
            return
        try:
            await kube.create_vehiclenode(self.client, body)
            metrics.API_WRITES.labels(resource="vehiclenodes", verb="create").inc()
        except errors.KubeError as exc:
            log.warning("enrolling car %s: %s", name, exc)


def _older(body: Mapping[str, Any], held: vn.VehicleNode) -> bool:
    """Is ``body`` an older version of the object than ``held`` (by resourceVersion)?"""
    return watch.older((body.get("metadata") or {}).get("resourceVersion"), held.metadata.resource_version)


def _same(body: Mapping[str, Any], held: vn.VehicleNode) -> bool:
    """Is ``body`` the very version held (our write's echo, a re-list)?"""
    version = (body.get("metadata") or {}).get("resourceVersion")
    return version is not None and version == held.metadata.resource_version


def _had_reason(car: vn.VehicleNode) -> bool:
    op = car.status.operator
    return bool(op and vn.IneligibleReason.LEASE_EXPIRED in op.reasons)


def _observe_reaction(car: vn.VehicleNode, now: datetime) -> None:
    observed = car.status.observed_at
    if observed is not None and now - observed < timedelta(minutes=5):
        metrics.STATE_REACTION.observe(max(0.0, (now - observed).total_seconds()))
