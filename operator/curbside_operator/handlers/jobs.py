"""kopf adapters for InferenceJobs and their pods: record what changed, let the job loop act.

Why this exists: ``on.event`` handlers keep no progress annotations and write nothing, so a
job's status writes (the throttled summary) and a pod's phase changes cost no extra patches;
``jobs_runtime.JobLoop`` plans and acts, level-based, on a tick and on every change.
"""

from __future__ import annotations

from typing import Any

import kopf

from curbside_operator.api import GROUP
from curbside_operator.reconcile import pods


@kopf.on.event(GROUP, "v1alpha1", "inferencejobs")
async def inferencejob_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo.jobs.job_event(event.get("type"), event["object"])


@kopf.on.event("", "v1", "pods", labels=pods.MANAGED_BY)
async def pod_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo.jobs.pod_event(event.get("type"), event["object"])
