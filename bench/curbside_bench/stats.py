"""Percentiles, summaries and per-second throughput: the arithmetic every scenario shares.

Why this exists: figures are only comparable if Curbside's and the baseline's are reduced the
same way. Throughput follows kube-scheduler's scheduler_perf (kubernetes/perf-tests): count events per
one-second bucket of the server's own timestamps (a condition's lastTransitionTime, an
object's creationTimestamp, an audit event's stageTimestamp) and report the average and the
percentiles of those samples, never the load generator's clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime


class StatsError(ValueError):
    """A figure was asked of data that cannot give it (no values, a bad share)."""


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` quantile (0..1) with linear interpolation between ranks (numpy's default)."""
    if not values:
        raise StatsError("percentile of no values")
    if not 0.0 <= share <= 1.0:
        raise StatsError(f"share {share!r} is not within 0..1")
    ordered = sorted(values)
    rank = share * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p90, p99 and max of some latencies (an empty list gives ``{"n": 0}``)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": sum(values) / len(values),
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "max": max(values),
    }


def parse_time(text: str) -> float:
    """An RFC 3339 timestamp of the API server (``...Z``, with or without fraction) as epoch s."""
    if not text:
        raise StatsError("empty timestamp")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def per_second(timestamps: Sequence[float], *, start: float | None = None) -> dict[str, float]:
    """Events per second, scheduler_perf style: one sample per whole second of the run.

    ``start`` is when the work became possible (a job's creation, the scheduler's start); the
    run ends at the last event. The average is events over the whole span (at least one
    second, because second-precision timestamps cannot tell a shorter one).
    """
    if not timestamps:
        return {"n": 0}
    first = min(timestamps) if start is None else min(start, min(timestamps))
    first_bucket, last_bucket = math.floor(first), math.floor(max(timestamps))
    buckets = [0] * (last_bucket - first_bucket + 1)
    for t in timestamps:
        buckets[math.floor(t) - first_bucket] += 1
    span = max(1.0, max(timestamps) - first)
    return {
        "n": len(timestamps),
        "span_s": span,
        "average": len(timestamps) / span,
        "p50": percentile(buckets, 0.50),
        "p90": percentile(buckets, 0.90),
        "p99": percentile(buckets, 0.99),
        "peak": float(max(buckets)),
    }


def share_of(part: float, whole: float) -> float:
    """part / whole, refusing a zero whole (a run that had nothing to measure)."""
    if whole <= 0:
        raise StatsError(f"share of a zero or negative whole ({whole!r})")
    return part / whole
