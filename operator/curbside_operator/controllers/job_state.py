"""The operator's live picture of InferenceJobs and their pods, as the watches report them.

Why this exists: kopf's ``on.event`` handlers and the pod watch only *record* what they see;
the job loop (``controllers.jobs``) plans from this picture. Keeping it apart from the loop
keeps the recording (cheap, synchronous, called for every event) separate from the acting
(asynchronous, one round at a time), and lets the loop be woken only when something it acts
on changed: a job, one of its pods, or a car that holds work.

A pod that is gone is also told to ``pod_deleted``'s listeners at once (the job loop adds the
dispatcher's ``pod_deleted``): its token must stop working now, not when a cached review of it
runs out (``dispatch/auth.py``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Mapping
from typing import Any

from curbside_api import base
from curbside_api.v1alpha1 import inferencejob as ij
from curbside_operator.kube import watch
from curbside_operator.reconcile import jobs, pods

log = logging.getLogger(__name__)


def pod_view(body: Mapping[str, Any]) -> jobs.PodView | None:
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    labels = meta.get("labels") or {}
    job, car = labels.get(pods.JOB_LABEL), spec.get("nodeName") or labels.get(pods.CAR_LABEL)
    if not job or not car:
        return None
    return jobs.PodView(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        job=job,
        car=car,
        phase=(body.get("status") or {}).get("phase", "Pending"),
        deleting=meta.get("deletionTimestamp") is not None,
    )


class JobState:
    """Jobs and pods as last seen."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], ij.InferenceJob] = {}
        self.invalid: dict[tuple[str, str], tuple[ij.InferenceJob, str]] = {}
        self.pods: dict[tuple[str, str], jobs.PodView] = {}
        """Change it through ``put_pod`` only: it keeps ``holding`` in step."""
        self.holding: collections.Counter[str] = collections.Counter()
        """Pods per car, so a car's change is looked up, not searched for among 10,000 pods."""
        self.wake = asyncio.Event()
        self.pod_deleted: list[Callable[[str, str, str | None], None]] = []
        """Called with (namespace, pod name, pod uid or None) for every pod seen deleted."""

    def _deleted(self, namespace: str, name: str, uid: str | None) -> None:
        for listener in self.pod_deleted:
            try:
                listener(namespace, name, uid)
            except Exception:  # a listener's bug must not stop the pod watch
                log.exception("pod %s/%s: a pod_deleted listener failed", namespace, name)

    def job_event(self, ev_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if ev_type == "DELETED":
            self.jobs.pop(key, None)
            self.invalid.pop(key, None)
        else:
            held = self.jobs.get(key)
            if held is not None and watch.older(meta.get("resourceVersion"), held.metadata.resource_version):
                return  # older than what our own write answered: we already know better
            try:
                self.jobs[key] = ij.InferenceJob.from_body(body)
            except base.InvalidSpecError as exc:
                log.warning("InferenceJob %s/%s is invalid: %s", *key, exc)
                self.jobs.pop(key, None)
        self.wake.set()

    def pod_event(self, ev_type: str | None, body: Mapping[str, Any]) -> None:
        if ev_type == "DELETED":
            meta = body.get("metadata") or {}
            self._deleted(meta.get("namespace", ""), meta.get("name", ""), meta.get("uid") or None)
        view = pod_view(body)
        if view is None:
            return
        self.put_pod((view.namespace, view.name), None if ev_type == "DELETED" else view)
        self.wake.set()

    def pod_gone(self, key: str) -> None:
        """A pod (``namespace/name``) that a fresh list no longer has: deleted while unwatched."""
        namespace, _, name = key.rpartition("/")
        self._deleted(namespace, name, None)
        if self.put_pod((namespace, name), None) is not None:
            self.wake.set()

    def put_pod(self, key: tuple[str, str], view: jobs.PodView | None) -> jobs.PodView | None:
        """Record ``view`` under ``key`` (None: forget it); the view it replaced, if any."""
        old = self.pods.pop(key, None) if view is None else self.pods.get(key)
        if old is not None:
            self.holding[old.car] -= 1
            if self.holding[old.car] <= 0:
                del self.holding[old.car]
        if view is not None:
            self.pods[key] = view
            self.holding[view.car] += 1
        return old

    def car_changed(self, name: str) -> None:
        """A car's report or Lease changed: look again at once if it holds work."""
        if name in self.holding:
            self.wake.set()
