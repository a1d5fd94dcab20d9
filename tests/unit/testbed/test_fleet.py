"""What a car Node looks like to Kubernetes."""

from __future__ import annotations

from curbside_testbed import components, fleet


def test_car_nodes_are_labelled_tainted_and_managed_by_kwok() -> None:
    node = fleet.car_node(12)
    meta = node["metadata"]
    assert meta["name"] == "car-00012"
    assert meta["labels"][fleet.VEHICLE_LABEL] == "true"
    assert meta["annotations"][components.KWOK_ANNOTATION] == "fake"
    assert node["spec"]["taints"] == [fleet.VEHICLE_TAINT]
    assert node["status"]["capacity"]["curbside.dev/accelerator"] == "1"


def test_car_nodes_are_deterministic_and_spread_over_regions() -> None:
    assert fleet.car_node(5) == fleet.car_node(5)
    regions = {fleet.car_node(i)["metadata"]["labels"]["topology.kubernetes.io/region"] for i in range(8)}
    assert regions == set(fleet.REGIONS)


def test_readiness_reads_the_ready_condition() -> None:
    node = fleet.car_node(0)
    assert not fleet.is_ready(node)
    node["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert fleet.is_ready(node)
    node["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    assert not fleet.is_ready(node)
