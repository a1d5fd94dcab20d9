"""Scenarios 1 and 2 for Curbside: a car leaves (announced or silent), many cars leave at once.

Why this exists: moving work off a departing car within seconds is Curbside's reason to exist
(docs/design.md, Numbers: p99 ≤ 2 s at 1,000 cars; silent loss ≤ lease grace + 5 s; 20 % of the fleet
leaving within 60 s all re-placed ≤ 120 s). Every time is taken from the API server's audit
log: the car's own status patch (an announced departure), its last Lease renewal (a silent
one), the operator's pod delete and the create of the replacement, bound to another car. The
operator fences the car's attempts and returns its units before it deletes the pod, so "pod
deleted" bounds "units re-leasable". ``rows`` sets these beside the baseline's figures.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from curbside_bench import curbside, kit, stats
from curbside_bench.results import Row, Scenario


def announced(ctx: kit.Ctx, job: str, count: int) -> dict[str, Any]:
    """``count`` departures, one after another: Driving reported → pod deleted → replacement.

    The cars with the oldest pods leave (pods the operator has long settled), one at a time;
    they stay away until all have left, then park again, so no car leaves twice.
    """
    audit = curbside.Audit(ctx.audit_log)
    gone_s: list[float] = []
    bound_s: list[float] = []
    away: list[str] = []
    # One list, not one per departure: at 10,000 cars a list of the job's pods takes seconds.
    live = kit.live_pods(ctx.api, curbside.NAMESPACE, f"curbside.dev/job={job}")
    oldest = sorted(live, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))
    for chosen in oldest[:count]:
        pod, car = chosen["metadata"]["name"], chosen["spec"]["nodeName"]
        asked = time.time()
        kit.report(ctx.api, car, kit.DRIVING)
        away.append(car)

        def patched(ev: list[dict[str, Any]], car: str = car, asked: float = asked) -> float | None:
            return curbside.status_patch_at(ev, car, since=asked)

        left = audit.wait(f"{car}'s Driving report", patched, 30)

        def created(ev: list[dict[str, Any]], left: float = left) -> float | None:
            return next(
                (w.at for w in curbside.pod_writes(ev, job) if w.verb == "create" and w.at >= left), None
            )

        bound_s.append(audit.wait(f"a replacement for {pod}", created, 120) - left)
        deleted = [
            w.at for w in curbside.pod_writes(audit.events, job) if w.name == pod and w.verb == "delete"
        ]
        if deleted and deleted[-1] >= left:
            gone_s.append(deleted[-1] - left)
        audit.events.clear()
    kit.report_all(ctx.api, away, kit.CHARGING)  # they park again: the fleet keeps its size
    return {
        "departures": len(bound_s),
        "pod_deleted_s": stats.summary(gone_s),
        "replacement_bound_s": stats.summary(bound_s),
        "samples_s": bound_s,
    }


def silent(ctx: kit.Ctx, job: str, count: int, grace: float) -> dict[str, Any]:
    """``count`` busy cars fall silent at once; each replacement measured from its last renewal.

    Only creates after the operator deleted a silent car's pod count as replacements: at
    10,000 cars the job may still be filling cars that kwok freed late, and those creates,
    taken as replacements, once gave 142 s with a 300 s grace.
    """
    audit = curbside.Audit(ctx.audit_log)
    on = {car: pod for pod, car in curbside.pods(ctx.api, job).items()}
    busy = sorted(on)[:count]
    last = sorted(ctx.cars.silence(car) for car in busy)
    theirs = {on[car] for car in busy}
    try:
        creates = audit.wait(
            f"{count} replacements of silent cars",
            lambda ev: replacements(curbside.pod_writes(ev, job), theirs, count),
            grace * 4 + 120,
        )
    finally:
        for car in busy:
            ctx.cars.resume(car)
    deleted = sorted(
        w.at for w in curbside.pod_writes(audit.events, job) if w.verb == "delete" and w.name in theirs
    )
    latencies = [new - old for old, new in zip(last, creates, strict=True)]
    return {
        "cars": count,
        "lease_grace_s": grace,
        "pod_deleted_s": stats.summary([d - old for old, d in zip(last, deleted, strict=False)]),
        "replacement_bound_s": stats.summary(latencies),
        "samples_s": latencies,
    }


def replacements(writes: list[curbside.PodWrite], gone: set[str], count: int) -> list[float] | None:
    """The first ``count`` pod creates after the first delete of a pod in ``gone`` (None until
    there are that many): the replacements of the pods the operator took off silent cars."""
    first = min((w.at for w in writes if w.verb == "delete" and w.name in gone), default=None)
    if first is None:
        return None
    created = sorted(w.at for w in writes if w.verb == "create" and w.at >= first)
    return created[:count] if len(created) >= count else None


def mass(ctx: kit.Ctx, job: str, *, share: float, window: float) -> dict[str, Any]:
    """``share`` of Curbside's cars report Driving at random moments within ``window`` seconds."""
    rng = random.Random(ctx.seed)
    leaving = rng.sample(ctx.curbside_cars, round(share * len(ctx.curbside_cars)))
    plan = sorted((rng.uniform(0, window), car) for car in leaving)
    want = len(curbside.pods(ctx.api, job))
    audit = curbside.Audit(ctx.audit_log)
    began = time.monotonic()

    def leave(item: tuple[float, str]) -> None:
        time.sleep(max(0.0, began + item[0] - time.monotonic()))
        kit.report(ctx.api, item[1], kit.DRIVING)

    # Each report waits for its moment on a pool: one after another, 2,000 reports to a busy
    # API server took 4 minutes instead of the 60 s window (the 10,000-car run of 2026-11-28).
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(leave, plan))
    gone = set(leaving)

    def staying() -> int:
        return sum(car not in gone for car in curbside.pods(ctx.api, job).values())

    kit.until_done_or_stalled(
        "every displaced pod re-placed", staying, want, stall=30, timeout=600, interval=ctx.poll_s
    )
    events = audit.settle()
    left = [t for car in leaving if (t := curbside.status_patch_at(events, car, since=0.0)) is not None]
    first = min(left)
    writes = [w for w in curbside.pod_writes(events, job) if w.at >= first]
    deleted = [w.at - first for w in writes if w.verb == "delete"]
    created = [w.at - first for w in writes if w.verb == "create"]
    kit.report_all(ctx.api, leaving, kit.CHARGING)  # they park again: later scenarios get every car
    return {
        "cars": len(ctx.curbside_cars),
        "leaving": len(leaving),
        "window_s": window,
        "reports_spread_s": max(left) - first,  # first → last Driving report, server clock
        "pods": want,
        "displaced_pods": len(deleted),
        "all_replaced_s": max(created) if created else 0.0,
        "after_last_left_s": max(0.0, max(created) + first - max(left)) if created else 0.0,
        "replaced_after_s": sorted(created),
        "deleted_after_s": sorted(deleted),
    }


def _pair(fig: dict[str, Any] | None, key: str = "reaction_s") -> list[float] | str | None:
    if not fig:
        return None
    s = fig.get(key) or {}
    if not s.get("n"):
        return f"not re-placed in {fig.get('waited_s', 0):.0f} s" if fig.get("departures") else None
    return [s["p50"], s["p99"]]


def _mass_cell(fig: dict[str, Any] | None, key: str = "all_replaced_s") -> float | str | None:
    if not fig:
        return None
    if not fig.get("displaced_pods"):
        return "no pod displaced"
    if fig.get(key) is not None:
        return float(fig[key])
    return f"> {fig.get('waited_s', 0):.0f} ({fig.get('replaced', 0)}/{fig.get('displaced_pods', 0)} moved)"


def scenarios(one: dict[str, Any], two: dict[str, Any], base: dict[str, Any], cars: int) -> list[Scenario]:
    """Scenarios 1 and 2 as the results carry them: Curbside's figures beside the baseline's."""
    fleet = f"{cars:,} cars"
    is_k8s = "Deployment + taint eviction"
    a, s = one["announced"], one["silent"]
    rows1 = [
        Row(
            "1 Departure reaction",
            f"announced departure → pod deleted, p50 / p99 ({fleet})",
            "s",
            [a["pod_deleted_s"]["p50"], a["pod_deleted_s"]["p99"]],
            note=f"{a['departures']} departures",
        ),
        Row(
            "1 Departure reaction",
            f"departure → replacement bound elsewhere, p50 / p99 ({fleet})",
            "s",
            [a["replacement_bound_s"]["p50"], a["replacement_bound_s"]["p99"]],
            _pair(base.get("single-default")),
            _pair(base.get("single-shortest")),
            is_k8s,
            note="Kubernetes has no announcement: the car stops heart-beating",
        ),
        Row(
            "1 Departure reaction",
            f"silent loss → replacement bound, p50 / p99 ({fleet})",
            "s",
            [s["replacement_bound_s"]["p50"], s["replacement_bound_s"]["p99"]],
            _pair(base.get("single-default")),
            _pair(base.get("single-shortest")),
            is_k8s,
            note=f"Curbside lease grace {s['lease_grace_s']:g} s",
        ),
    ]
    rows2 = [
        Row(
            "2 Mass departure",
            f"{two['leaving']} of {two['cars']} cars leave within {two['window_s']:g} s "
            "→ all work re-placed, from the first car leaving",
            "s",
            two["all_replaced_s"],
            _mass_cell(base.get("mass-default")),
            _mass_cell(base.get("mass-shortest")),
            is_k8s,
            note=f"{two['displaced_pods']} pods displaced; baseline: 20 % of its own cars",
        ),
        Row(
            "2 Mass departure",
            "… from the last car leaving",
            "s",
            two["after_last_left_s"],
            _mass_cell(base.get("mass-default"), "after_last_left_s"),
            _mass_cell(base.get("mass-shortest"), "after_last_left_s"),
            is_k8s,
        ),
    ]
    baseline = {k: v for k, v in base.items()}
    return [
        Scenario(
            "departure",
            {"curbside": one, "baseline": {k: v for k, v in baseline.items() if k.startswith("single")}},
            rows1,
        ),
        Scenario(
            "mass_departure",
            {"curbside": two, "baseline": {k: v for k, v in baseline.items() if k.startswith("mass")}},
            rows2,
        ),
    ]
