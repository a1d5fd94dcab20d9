"""InferenceJobs and their pods, fed into ``JobState``: record what changed, let the job loop act.

Why this exists: the job loop (``controllers.jobs.JobLoop``) plans and acts, level-based, on a
tick and on every change; these only record. Jobs come through a kopf ``on.event`` handler,
which keeps no progress annotations and writes nothing, so a job's status writes (the
throttled summary) cost no extra patches. Pods come through our own watch
(``kube.watch.list_then_watch``, as the fleet's objects do), not kopf: kopf runs a worker
per object that holds the object's latest body while events keep coming, and the job loop
creates pods by the thousand, each with several events in its first seconds; ours turns
each event into a ``PodView`` (six fields) at once.
"""

from __future__ import annotations

from typing import Any

import kopf

from curbside_api import GROUP
from curbside_operator.controllers.job_state import JobState
from curbside_operator.kube import jobs as kube
from curbside_operator.kube import watch
from curbside_operator.reconcile import pods


@kopf.on.event(GROUP, "v1alpha1", "inferencejobs")
async def inferencejob_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo.jobs.job_event(event.get("type"), event["object"])


async def watch_pods(state: JobState, client: Any) -> None:
    """Curbside's inference pods in every namespace, forever."""
    async for ev_type, key, body in watch.list_then_watch(
        client,
        kube.RawPod,
        what="inference pods",
        namespace="*",
        labels=pods.MANAGED_BY,
        key=watch.namespaced_key,
    ):
        if body is None:
            state.pod_gone(key)
        else:
            state.pod_event(ev_type, body)
