"""Scenario 3: placements per second, Curbside's operator against kube-scheduler on the same bed.

Why this exists: Curbside is the scheduler of its inference pods (docs/jobs.md); it must place
at least as fast as kube-scheduler places equivalent pods (docs/design.md, Numbers: ≥ 1×, ≥ 100/s). Both are
timed from the objects, as kube-scheduler's scheduler_perf does, never from this client's
clock: a Curbside pod is born bound, so its creationTimestamp is its binding; a kube-scheduler
pod's is its PodScheduled condition's lastTransitionTime. Both have whole seconds, so both are
reduced the same way (``stats.per_second``: samples per second, first to last placement);
Curbside's microsecond audit timestamps are reported beside them.

kube-scheduler gets a fair start: it is stopped while the pods are created, so it finds them
all pending when it starts, as Curbside finds a job's cars all free.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from typing import Any

import httpx

from curbside_api.v1alpha1.inferencejob import DEFAULT_TRITON_IMAGE
from curbside_bench import curbside, kit, stats
from curbside_bench.results import Row, Scenario
from curbside_testbed import bed

SCHED_NAMESPACE = "bench-scheduler"


def scheduler_pod(index: int) -> dict[str, Any]:
    """A pod like Curbside's, left to kube-scheduler: car toleration, car affinity, one accelerator."""
    one = {"curbside.dev/accelerator": "1"}
    term = {"matchExpressions": [{"key": kit.GROUP_LABEL, "operator": "In", "values": ["curbside"]}]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"sched-{index:05d}", "labels": {"app": "bench-scheduler"}},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "tolerations": [{"key": "curbside.dev/vehicle", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
                }
            },
            "containers": [
                {
                    "name": "tritonserver",
                    "image": DEFAULT_TRITON_IMAGE,
                    "resources": {"requests": one, "limits": one},
                }
            ],
        },
    }


async def _create(base_url: str, ctx: ssl.SSLContext, count: int) -> None:
    sem = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=base_url, verify=ctx, timeout=120) as client:

        async def one(i: int) -> None:
            async with sem:
                r = await client.post(f"/api/v1/namespaces/{SCHED_NAMESPACE}/pods", json=scheduler_pod(i))
                if r.status_code not in (201, 409):
                    raise kit.BenchError(f"creating pod {i}: HTTP {r.status_code}: {r.text[:200]}")

        await asyncio.gather(*(one(i) for i in range(count)))


def kube_scheduler(tb: bed.TestBed, api: httpx.Client, count: int, timeout: float) -> dict[str, Any]:
    """kube-scheduler placing ``count`` pending pods on Curbside's cars (none of its pods there yet)."""
    api.post("/api/v1/namespaces", json={"metadata": {"name": SCHED_NAMESPACE}})
    tb.stop("kube-scheduler")
    try:
        asyncio.run(_create(tb.server, tb.ssl_context(), count))
    finally:
        tb.restart("kube-scheduler")

    def times() -> list[float]:
        return [t for p in kit.live_pods(api, SCHED_NAMESPACE) if (t := kit.scheduled_at(p)) is not None]

    kit.until_done_or_stalled(
        "pods scheduled by kube-scheduler", lambda: len(times()), count, stall=30, timeout=timeout
    )
    placed = times()
    return {"pods": len(placed), "asked": count, "throughput": stats.per_second(placed)}


async def _delete(base_url: str, ctx: ssl.SSLContext, count: int) -> None:
    sem = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=base_url, verify=ctx, timeout=120) as client:

        async def one(i: int) -> None:
            async with sem:
                with contextlib.suppress(httpx.TransportError):  # the final check finds any left
                    await client.delete(
                        f"/api/v1/namespaces/{SCHED_NAMESPACE}/pods/sched-{i:05d}",
                        params={"gracePeriodSeconds": 0},
                    )

        await asyncio.gather(*(one(i) for i in range(count)))


class Removal:
    """kube-scheduler's pods deleted in the background, one DELETE each, 32 at a time.

    A collection delete runs on one worker in the API server and was cut off at 60 s having
    removed about 180 pods (3/s at 10,000 cars); single deletes in parallel do not queue behind
    each other, and the operator's start and the cars' enrollment go on meanwhile.
    """

    def __init__(self, tb: bed.TestBed, api: httpx.Client, count: int) -> None:
        self.api = api
        self.thread = threading.Thread(
            target=lambda: asyncio.run(_delete(tb.server, tb.ssl_context(), count)), daemon=True
        )
        self.thread.start()

    def wait(self, timeout: float) -> None:
        """Until no kube-scheduler pod is left (the deletes done, then one-pod polls)."""
        self.thread.join(timeout)
        path = f"/api/v1/namespaces/{SCHED_NAMESPACE}/pods"

        def gone() -> bool:
            r = self.api.get(path, params={"limit": 1})
            if r.status_code == 200 and r.json()["items"]:
                name = r.json()["items"][0]["metadata"]["name"]
                with contextlib.suppress(httpx.TransportError):
                    self.api.delete(f"{path}/{name}", params={"gracePeriodSeconds": 0})
                return False
            return r.status_code == 200

        kit.until("kube-scheduler's pods gone", gone, timeout, 1.0)


def operator(ctx: kit.Ctx, job: str, count: int, timeout: float) -> dict[str, Any]:
    """Curbside placing ``job`` on ``count`` eligible cars, 20 units a car; the job stays (the
    departure scenarios go on with it, so 10,000 cars need no second job placed and deleted)."""
    audit = curbside.Audit(ctx.audit_log)
    body = curbside.job_body(job, units=count * 20, max_cars=count, output=ctx.work / "results")
    created = stats.parse_time(curbside.apply(ctx.api, body)["metadata"]["creationTimestamp"])
    kit.until_done_or_stalled(
        "pods placed by Curbside",
        lambda: len(curbside.pods(ctx.api, job)),
        count,
        stall=30,
        timeout=timeout,
        interval=ctx.poll_s,
    )
    pods = kit.live_pods(ctx.api, curbside.NAMESPACE, f"curbside.dev/job={job}")
    seconds = [t for p in pods if (t := kit.scheduled_at(p)) is not None]
    micro = [w.at for w in curbside.pod_writes(audit.settle(), job) if w.verb == "create"]
    return {
        "pods": len(pods),
        "asked": count,
        "throughput": stats.per_second(seconds),
        "throughput_audit": stats.per_second(micro),
        "first_pod_after_job_s": (min(micro) - created) if micro else None,
    }


def run(ctx: kit.Ctx, job: str, count: int, timeout: float, sched: dict[str, Any]) -> Scenario:
    """Curbside's half (``sched`` is kube-scheduler's, measured before the operator started)."""
    ours = operator(ctx, job, count, timeout)
    o, k = ours["throughput"], sched["throughput"]
    rows = [
        Row(
            "3 Placement throughput",
            f"placements/s, average ({ours['pods']:,} / {sched['pods']:,} pods placed)",
            "pods/s",
            o.get("average"),
            k.get("average"),
            baseline_is="kube-scheduler, same pods and cars",
            note="from creationTimestamp / PodScheduled",
        ),
        Row(
            "3 Placement throughput",
            "placements/s per second, p50 / p99",
            "pods/s",
            [o["p50"], o["p99"]] if o.get("n") else None,
            [k["p50"], k["p99"]] if k.get("n") else None,
            baseline_is="kube-scheduler",
        ),
    ]
    return Scenario("placement", {"curbside": ours, "kube_scheduler": sched}, rows)
