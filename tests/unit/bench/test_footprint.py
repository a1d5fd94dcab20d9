"""The kubelet baseline of scenario 4 counts exactly the requests that keep a node alive."""

from __future__ import annotations

from curbside_testbed.bench import footprint

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
