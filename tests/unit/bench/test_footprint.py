"""The kubelet baseline of scenario 4 counts exactly the requests that keep a node alive."""

from __future__ import annotations

from pathlib import Path

import pytest

from curbside_bench import footprint, kit

LEASES = 'component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource"'
NODES = 'component="apiserver",dry_run="",group="",resource="nodes",scope="resource"'

METRICS = f"""\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests ...
# TYPE apiserver_request_total counter
apiserver_request_total{{code="200",{LEASES},subresource="",verb="PUT",version="v1"}} 1200
apiserver_request_total{{code="409",{LEASES},subresource="",verb="PUT",version="v1"}} 3
apiserver_request_total{{code="200",{LEASES},subresource="",verb="PATCH",version="v1"}} 900
apiserver_request_total{{code="200",{NODES},subresource="status",verb="PATCH",version="v1"}} 4.5e+01
apiserver_request_total{{code="200",{NODES},subresource="",verb="PATCH",version="v1"}} 77
apiserver_request_total{{code="200",{NODES},subresource="",verb="LIST",version="v1"}} 5
apiserver_request_duration_seconds_count{{resource="leases",subresource="",verb="UPDATE"}} 99999
"""


def test_node_lease_updates_and_node_status_patches_count_nothing_else() -> None:
    # Car Lease merge patches (PATCH leases), kube-controller-manager's taint patches (PATCH
    # nodes, no subresource), lists and other metrics are not a kubelet's heartbeat.
    assert footprint.heartbeat_requests(METRICS) == 1200 + 3 + 45


def test_no_counters_no_heartbeats() -> None:
    assert footprint.heartbeat_requests("# nothing here\n") == 0


class _NoOperator:
    """A Sampler's operator is only read by its thread, which these tests never start."""


def _sampler(samples: list[tuple[float, float, float, str]]) -> footprint.Sampler:
    s = footprint.Sampler(_NoOperator())  # type: ignore[arg-type]
    s.samples = samples
    return s


IDLE = {
    "cars": 10_000,
    "pods": 3_000,
    "operator_rss_mib": {"max": 180.0},
    "operator_cpu_share": 0.1,
    "operator_writes_per_car_per_min": 0.0,
    "lease_writes_per_car_per_min": 1.2,
    "renew_period_s": 50.0,
    "kubernetes_controllers_rss_mib": {"kube-scheduler": 100.0},
}


def test_peak_rss_per_phase() -> None:
    s = _sampler([(1, 0, 100.0, "start"), (2, 0, 230.0, "placement"), (3, 0, 210.0, "placement")])
    assert s.figures()["peak_rss_mib_by_phase"] == {"start": 100.0, "placement": 230.0}


def test_the_peak_row_is_the_whole_runs_and_names_its_scenario() -> None:
    s = _sampler([(1, 0, 230.0, "placement"), (2, 0, 300.0, "idle"), (3, 0, 250.0, "churn")])
    rows = footprint.scenario({"10000 cars": IDLE}, s).rows
    assert (rows[0].measure, rows[0].curbside, rows[0].note) == (
        "RSS peak over the whole run",
        300.0,
        "in idle",
    )
    assert rows[1].measure == "RSS, 10,000 cars, 3,000 pods"


def test_no_samples_no_peak_row() -> None:
    rows = footprint.scenario({"10000 cars": IDLE}, _sampler([])).rows
    assert not any(r.measure.startswith("RSS peak") for r in rows)


@pytest.mark.parametrize(
    ("missing", "cars", "sizes"),
    [
        (7_000, 6_000, [3_500, 3_500]),  # the full run: 3,000 departure pods + 7,000 = 10,000
        (700, 600, [350, 350]),  # the quick run
        (701, 600, [351, 350]),  # exactly what is missing, not one pod more
        (20_000, 6_000, [6_000, 6_000]),  # a job has at most one pod a car
        (0, 600, []),
        (-5, 600, []),  # already more pods than cars: no fill job at all
    ],
)
def test_fill_jobs_add_exactly_the_missing_pods_within_one_pod_a_car(
    missing: int, cars: int, sizes: list[int]
) -> None:
    assert footprint.fill_sizes(missing, cars=cars) == sizes
    assert len(footprint.FILL_JOBS) + 1 == footprint.SLOTS_PER_CAR


def test_the_audit_tail_reads_whole_lines_once_and_a_partial_one_when_it_is_done(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text('{"verb": "old"}\n')
    tail = kit.AuditTail(log)  # from the end: what was there before is not read
    with log.open("a") as f:
        f.write('{"verb": "create"}\n{"verb": "pat')
    assert tail.read() == [{"verb": "create"}]
    with log.open("a") as f:
        f.write('ch"}\n')
    assert tail.read() == [{"verb": "patch"}]
    assert tail.read_raw() == b""
