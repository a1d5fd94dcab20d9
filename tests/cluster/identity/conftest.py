"""Cluster fixtures for the identity tests: two enrolled cars, with config/rbac in force.

config/rbac is applied by the session's ``rbac_applied`` fixture (tests/cluster/conftest.py).
Two cars with fresh names (a reused test bed may hold earlier sessions' cars) are enrolled
through ``curbside_testbed.identity``, get a VehicleNode from examples/01-vehiclenode.yaml whose
operator-owned status is set (as the operator would), and car B gets a Lease. Before any test
runs, the RBAC objects and the admission policy are awaited until they are in force, so a test
sees the steady state and each expectation's own polling is only a safety net.

This folder's ``cars`` fixture (``tests.support.car_identity.Cars``) overrides the scripted
cars of tests/cluster/conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from curbside_testbed import bed, identity
from tests.support import wait
from tests.support.car_identity import (
    LEASES,
    MERGE,
    POLICY,
    VN,
    Cars,
    lease,
    ok,
    operator_status,
    vehicle_node,
)


@pytest.fixture(scope="module")
def cars(testbed: bed.TestBed, rbac_applied: None) -> Iterator[Cars]:
    """Cars A and B enrolled, with VehicleNodes and B's Lease; removed afterwards."""
    suffix = os.urandom(3).hex()
    a, b = f"idt-{suffix}-a", f"idt-{suffix}-b"
    with testbed.http() as admin:
        kubeconfigs = {car: identity.enroll_car(testbed, car) for car in (a, b)}
        for car in (a, b):
            ok(admin.post(VN, json=vehicle_node(car)))
            ok(admin.patch(f"{VN}/{car}/status", json={"status": operator_status()}, headers=MERGE))
        ok(admin.post(LEASES, json=lease(b)))
        client = identity.http_client(kubeconfigs[a])
        try:
            world = Cars(a=a, b=b, a_client=client, admin=admin)
            # In force: A's own RBAC (it can read its VehicleNode) and the admission policy
            # (A may create a Lease, but not one named after B).
            wait.until(lambda: client.get(f"{VN}/{a}").status_code == 200, timeout=30, what="car RBAC")
            wait.until(
                lambda: POLICY in client.post(LEASES, json=lease(b)).text,
                timeout=30,
                what="the admission policy refusing a Lease named after another car",
            )
            yield world
        finally:
            client.close()
            for car in (a, b):
                admin.delete(f"{VN}/{car}")
                admin.delete(f"{LEASES}/{car}")
                identity.unenroll_car(testbed, car)
