"""Small helpers over grafana-foundation-sdk: one datasource variable, uniform panels.

Why this exists: every Curbside panel queries the same Prometheus (the dashboard's
``datasource`` variable), and the three dashboards share sizes and legends; the helpers keep
each dashboard module a readable list of questions and queries.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["curbside", "generated"]


def new(uid: str, title: str, description: str) -> db.Dashboard:
    """A dashboard with the ``datasource`` variable, UTC, a 30 s refresh and the last 6 hours."""
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .timezone("utc")
        .refresh("30s")
        .time("now-6h", "now")
        .editable()
        .with_variable(
            db.DatasourceVariable("datasource").label("Prometheus").type("prometheus").multi(False)
        )
    )


def query(expr: str, legend: str = "__auto") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DATASOURCE)


def series(
    title: str,
    description: str,
    unit: str,
    *queries: prometheus.Dataquery,
    width: int = 12,
    stack: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .height(8)
        .span(width)
        .min(0)
    )
    if stack:
        panel = panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL)).fill_opacity(30)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def single(title: str, description: str, unit: str, q: prometheus.Dataquery, *, width: int = 6) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .height(4)
        .span(width)
        .with_target(q.instant())
    )


def ranking(
    title: str, description: str, unit: str, q: prometheus.Dataquery, *, width: int = 12
) -> bargauge.Panel:
    """Horizontal bars, one per series of an instant query (a leaderboard: pair with ``topk``)."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .height(8)
        .span(width)
        .min(0)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .with_target(q.instant())
    )


def histogram(title: str, description: str, bucket_metric: str, *, width: int = 12) -> heatmap.Panel:
    """A heatmap of a Prometheus histogram's buckets (``<name>_bucket``) over time."""
    q = query(f"sum by (le) (increase({bucket_metric}_bucket[$__rate_interval]))", "{{le}}")
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .height(8)
        .span(width)
        .with_target(q.format(pm.PromQueryFormat.HEATMAP))
    )


def quantiles(metric: str, by: str = "") -> list[prometheus.Dataquery]:
    """p50 and p99 of a histogram, optionally per label ``by``."""
    group = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        query(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[$__rate_interval])))",
            f"p{int(q * 100)}{suffix}",
        )
        for q in (0.5, 0.99)
    ]


def row(title: str) -> db.Row:
    return db.Row(title)
