"""Scenario 4: the operator's footprint: memory, CPU and API writes per car, while the fleet idles.

Why this exists: a Python operator for 10,000 cars must stay small (docs/design.md, Numbers: ≤ 250 MB RSS
with 10,000 cars and pods; an unchanged car costs one Lease write per period and no operator
write). ``Sampler`` reads the operator's RSS and CPU seconds from /proc every second of the
whole run (the plot shows them with the scenarios marked); ``fill`` tops the departure job's
pods up with two more jobs until the bench holds as many pods as the bed has cars (10,000 cars,
10,000 pods: the target's shape), and ``idle`` then holds the fleet still and counts, from the
audit log, every write the operator made meanwhile. The
baseline columns are what Kubernetes' own controllers (kube-controller-manager and
kube-scheduler, Go) hold on the same bed at the same moment, and what its node heartbeats
(kwok's fake kubelets: a node Lease update per renewal and a node status patch every 5
minutes) write per car meanwhile, from the API server's own request counters.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from curbside_bench import curbside, kit, stats
from curbside_bench.results import Row, Scenario
from curbside_testbed import audit, bed, components

FILL_JOBS = ("fill-a", "fill-b")
SLOTS_PER_CAR = 1 + len(FILL_JOBS)
"""The bench operator's ``CURBSIDE_SLOTS_PER_CAR``: a car may run the departure job's pod and
one of each fill job's (a job never has two pods on one car), so 6,000 Curbside cars can hold
10,000 pods. Only the idle phase has more than one job; the other scenarios are unchanged."""

HEARTBEATS = {("PUT", "leases", ""), ("PATCH", "nodes", "status")}
"""The requests a kubelet (kwok's) makes to stay alive: node Lease updates and node status patches.

On this bed nothing else makes them: car Leases are merge patches, kube-controller-manager
patches Nodes without the status subresource, and nothing else holds a Lease (no leader
election)."""
_REQUEST = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def heartbeat_requests(metrics: str) -> int:
    """How many ``HEARTBEATS`` requests the API server's ``/metrics`` text has counted."""
    total = 0.0
    for line in metrics.splitlines():
        found = _REQUEST.match(line)
        if found is None:
            continue
        labels = dict(_LABEL.findall(found.group(1)))
        if (labels.get("verb"), labels.get("resource"), labels.get("subresource", "")) in HEARTBEATS:
            total += float(found.group(2))
    return int(total)


def _heartbeats(api: Any) -> int:
    r = api.get("/metrics")
    r.raise_for_status()
    return heartbeat_requests(r.text)


def _alive_nodes(api: Any, since: float) -> int:
    """Car Nodes whose Lease was renewed after ``since`` (the baseline's departed cars are not)."""
    r = api.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
    r.raise_for_status()
    return sum(
        1
        for lease in r.json().get("items", [])
        if (renewed := (lease.get("spec") or {}).get("renewTime")) and stats.parse_time(renewed) >= since
    )


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024


class Sampler:
    """The operator's (CPU s, RSS MiB) once a second, with the scenario that was running."""

    def __init__(self, op: kit.Operator) -> None:
        self.op = op
        self.began = time.monotonic()
        self.phase = "start"
        self.samples: list[tuple[float, float, float, str]] = []
        self.marks: list[tuple[float, str]] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def mark(self, phase: str) -> None:
        self.phase = phase
        self.marks.append((time.monotonic() - self.began, phase))

    def _loop(self) -> None:
        while not self.stop_event.wait(1.0):
            try:
                cpu, rss = self.op.usage()
            except (kit.BenchError, OSError):
                continue
            self.samples.append((time.monotonic() - self.began, cpu, rss, self.phase))

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)

    def figures(self) -> dict[str, Any]:
        rss = [s[2] for s in self.samples]
        by_phase: dict[str, float] = {}
        for _, _, r, phase in self.samples:
            by_phase[phase] = max(r, by_phase.get(phase, 0.0))
        return {
            "peak_rss_mib": max(rss, default=0.0),
            "peak_rss_mib_by_phase": by_phase,
            "timeline": [
                {"t": round(t, 1), "cpu_s": round(c, 2), "rss_mib": round(r, 1), "phase": p}
                for t, c, r, p in self.samples
            ],
            "marks": [{"t": round(t, 1), "phase": p} for t, p in self.marks],
        }


def settle(ctx: kit.Ctx, *, quiet: float, timeout: float) -> float:
    """Wait until the operator has written nothing for ``quiet`` s (or ``timeout`` s passed);
    the seconds waited. A quick run once began its idle window while the operator was still
    judging the 400 cars without a Lease (they turn LeaseExpired one grace period after it
    starts): 310 status writes counted as "nothing changes". (kwok's writes are not in the
    audit log: ``fill`` waits for its pods to be Running instead.)"""
    return audit.wait_quiet(ctx.audit_log, curbside.OPERATOR_USER, quiet, timeout, strict=False)


def held(ctx: kit.Ctx) -> dict[str, int]:
    """The bench's live Curbside pods by job."""
    return dict(
        Counter(
            p["metadata"]["labels"].get("curbside.dev/job", "")
            for p in kit.live_pods(ctx.api, curbside.NAMESPACE)
        )
    )


def running(ctx: kit.Ctx) -> int:
    """The bench's live Curbside pods that kwok has marked Running."""
    live = kit.live_pods(ctx.api, curbside.NAMESPACE)
    return sum((p.get("status") or {}).get("phase") == "Running" for p in live)


def fill_sizes(missing: int, *, cars: int) -> list[int]:
    """How many cars each of ``FILL_JOBS`` asks for to add ``missing`` pods (a job has at most
    one pod a car, so no job asks for more than ``cars``)."""
    if missing <= 0:
        return []
    share, left = divmod(missing, len(FILL_JOBS))
    return [min(cars, share + (i < left)) for i in range(len(FILL_JOBS))]


def fill(ctx: kit.Ctx, *, pods: int, timeout: float) -> dict[str, Any]:
    """Apply ``FILL_JOBS`` so the bench holds ``pods`` pods in all, and wait until they are
    Running (or their count stalls for 60 s); what was asked and how long it took."""
    before = sum(held(ctx).values())
    sizes = fill_sizes(pods - before, cars=len(ctx.curbside_cars))
    began = time.monotonic()
    for name, size in zip(FILL_JOBS, sizes, strict=False):
        # Two units a pod: every pod's work stays pending, so no pod is removed as idle.
        curbside.apply(
            ctx.api, curbside.job_body(name, units=2 * size, max_cars=size, output=ctx.work / "results")
        )
    target = before + sum(sizes)
    # Running: kwok has played their stages. A window opened as soon as the pods exist would
    # overlap kwok marking 7,000 of them Running: each pod event wakes the job loop, and at
    # 10,000 cars such a window's first 80 s cost the operator 0.4-0.6 cores, its last 50 s 0.15.
    kit.until_done_or_stalled(
        "the fill jobs' pods Running",
        lambda: running(ctx),
        target,
        stall=60,
        timeout=timeout,
        interval=ctx.poll_s,
    )
    return {
        "asked": pods,
        "before": before,
        "fill_jobs": dict(zip(FILL_JOBS, sizes, strict=False)),
        "placed_s": time.monotonic() - began,
    }


def unfill(ctx: kit.Ctx, timeout: float) -> float:
    """Delete the fill jobs, wait until their pods are gone for good (not only terminating) and
    the operator has written nothing for 5 s; the seconds that took. The mass departure then moves only
    the departure job's pods, as in every run before, on an operator that is not still busy
    with 7,000 pods going away."""
    began = time.monotonic()
    curbside.delete_all(ctx.api, FILL_JOBS, timeout, ctx.poll_s)
    kit.until("the fill jobs' pods removed", lambda: not _any_fill_pod(ctx), timeout, ctx.poll_s)
    settle(ctx, quiet=5.0, timeout=120.0)
    return time.monotonic() - began


def _any_fill_pod(ctx: kit.Ctx) -> bool:
    """Whether any pod of a fill job is left, terminating ones included."""
    path = f"/api/v1/namespaces/{curbside.NAMESPACE}/pods"
    selector = f"curbside.dev/job in ({','.join(FILL_JOBS)})"
    return any(next(kit.pages(ctx.api, path, selector=selector, limit=1)))


def idle(ctx: kit.Ctx, tb: bed.TestBed, *, seconds: float, cars_total: int) -> dict[str, Any]:
    """Hold the fleet still for ``seconds`` with its jobs placed; what the operator cost meanwhile."""
    settled = settle(ctx, quiet=10.0, timeout=max(60.0, seconds))
    tail = kit.AuditTail(ctx.audit_log)
    heartbeats0, since = _heartbeats(ctx.api), time.time()
    cpu0, _ = ctx.operator.usage()
    t0 = time.monotonic()
    rss: list[float] = []
    while time.monotonic() - t0 < seconds:
        rss.append(ctx.operator.usage()[1])
        time.sleep(1.0)
    cpu1, _ = ctx.operator.usage()
    wall = time.monotonic() - t0
    heartbeats = _heartbeats(ctx.api) - heartbeats0
    alive = _alive_nodes(ctx.api, since)
    by_job = held(ctx)
    time.sleep(1.5)  # the audit writer flushes every second
    events = tail.read()
    by: Counter[str] = Counter()
    lease_writes = 0
    for e in events:
        user, verb, resource, namespace, _ = kit.audit_key(e)
        if user == curbside.OPERATOR_USER:
            by[f"{verb} {resource}"] += 1
        elif resource == "leases" and namespace == "curbside-cars":
            lease_writes += 1
    minutes = wall / 60
    layout = tb.layout
    assert layout is not None
    go = {
        name: rss_mib(pid)
        for name in ("kube-controller-manager", "kube-scheduler")
        if (pid := layout.pids.get(name)) and components.is_ours(pid, layout)
    }
    return {
        "seconds": wall,
        "settle_s": settled,  # waited first for the operator's last write to be 10 s old
        "cars": cars_total,
        "curbside_cars": len(ctx.curbside_cars),
        "pods": sum(by_job.values()),
        "pods_by_job": by_job,
        "operator_rss_mib": stats.summary(rss),
        "operator_cpu_share": (cpu1 - cpu0) / wall,
        "operator_writes": dict(by),
        "operator_writes_per_car_per_min": sum(by.values()) / cars_total / minutes,
        "lease_writes_per_car_per_min": lease_writes / len(ctx.curbside_cars) / minutes,
        "renew_period_s": ctx.cars.period,
        "kubelet_writes_per_node_per_min": heartbeats / max(1, alive) / minutes,
        "kubelet_lease_seconds": layout.lease_seconds,
        "kubernetes_controllers_rss_mib": go,
    }


def scenario(at: dict[str, dict[str, Any]], sampler: Sampler) -> Scenario:
    """Rows for each fleet size measured (``at``: cars → idle figures), and the run's RSS peak
    with the scenario it was reached in."""
    rows = []
    by_phase: dict[str, float] = sampler.figures()["peak_rss_mib_by_phase"]
    if by_phase:
        phase = max(by_phase, key=by_phase.__getitem__)
        rows.append(
            Row(
                "4 Operator footprint",
                "RSS peak over the whole run",
                "MiB",
                by_phase[phase],
                note=f"in {phase}",
            )
        )
    for f in at.values():
        go = f["kubernetes_controllers_rss_mib"]
        rows += [
            Row(
                "4 Operator footprint",
                f"RSS, {f['cars']:,} cars, {f['pods']:,} pods",
                "MiB",
                f["operator_rss_mib"].get("max"),
                sum(go.values()) or None,
                baseline_is="kube-controller-manager + kube-scheduler RSS",
            ),
            Row(
                "4 Operator footprint",
                f"CPU while idle, {f['cars']:,} cars",
                "cores",
                f["operator_cpu_share"],
            ),
            Row(
                "4 Operator footprint",
                f"operator API writes per car per minute, {f['cars']:,} cars",
                "writes",
                f["operator_writes_per_car_per_min"],
            ),
            Row(
                "4 Operator footprint",
                "car writes per car per minute while nothing changes",
                "writes",
                f["lease_writes_per_car_per_min"],
                f.get("kubelet_writes_per_node_per_min"),
                baseline_is="kubelet (kwok): node Lease updates + node status patches",
                note=f"Curbside: Lease renewal every {f['renew_period_s']:g} s, no status write; "
                f"kwok: Lease renewal every {f.get('kubelet_lease_seconds', 40) / 4:g} s, status every 5 min",
            ),
        ]
    return Scenario("footprint", {"idle": at, **sampler.figures()}, rows)
