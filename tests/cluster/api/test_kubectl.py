"""``kubectl get`` and ``kubectl explain`` are part of the UX: check what a user sees.

Status is written here the way the operator and the agent will write it, from the models
(``to_json``) through the status subresource, so these tests also prove the API server
accepts what the models produce.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from curbside_api import conditions
from curbside_api.v1alpha1 import inferencejob, vehiclenode
from tests.support import manifests as m
from tests.support import wait

NOW = datetime(2025, 6, 1, 22, 0, tzinfo=UTC)
MERGE = {"Content-Type": "application/merge-patch+json"}


def _table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def _job_status() -> inferencejob.InferenceJobStatus:
    units = inferencejob.UnitCounts(total=1000, pending=530, running=20, succeeded=450)
    status = inferencejob.InferenceJobStatus(
        units=units,
        completed_units="0-449",
        progress=inferencejob.progress_text(units),
        completions=inferencejob.completions_text(units),
        cars_in_use=12,
        start_time=NOW,
    )
    conditions.set_condition(
        status.conditions,
        type=conditions.SUCCEEDED,
        status=conditions.Status.UNKNOWN,
        reason=conditions.REASON_UNITS_RUNNING,
        message="450 of 1000 units done on 12 cars",
        generation=1,
        now=NOW,
    )
    return status


def test_get_ij_shows_progress(api: httpx.Client, namespace: str, kubectl: m.Kubectl) -> None:
    assert api.post(m.url("inferencejobs", namespace=namespace), json=m.job("seti")).status_code == 201
    r = api.patch(
        m.url("inferencejobs", namespace=namespace, name="seti", sub="status"),
        json={"status": _job_status().to_json()},
        headers=MERGE,
    )
    assert r.status_code == 200, r.text

    rows = _table(kubectl("get", "ij", "-n", namespace).stdout)
    assert rows[0] == ["NAME", "STATUS", "PROGRESS", "UNITS", "CARS", "AGE"]
    assert rows[1][:5] == ["seti", "UnitsRunning", "45%", "450/1000", "12"]

    wide = kubectl("get", "inferencejobs", "-n", namespace, "-o", "wide").stdout
    assert wide.splitlines()[0].split()[-2:] == ["MODEL", "MESSAGE"]
    assert wide.splitlines()[1].endswith("identity   450 of 1000 units done on 12 cars")


def test_kubectl_wait_understands_our_conditions(
    api: httpx.Client, namespace: str, kubectl: m.Kubectl
) -> None:
    assert api.post(m.url("inferencejobs", namespace=namespace), json=m.job("done")).status_code == 201
    status = _job_status()
    conditions.set_condition(
        status.conditions,
        type=conditions.SUCCEEDED,
        status=conditions.Status.TRUE,
        reason=conditions.REASON_COMPLETED,
        message="1000 units",
        generation=1,
        now=NOW,
    )
    api.patch(
        m.url("inferencejobs", namespace=namespace, name="done", sub="status"),
        json={"status": status.to_json()},
        headers=MERGE,
    ).raise_for_status()
    kubectl("wait", "-n", namespace, "--for=condition=Succeeded", "ij/done", "--timeout=20s")


def _car_status() -> vehiclenode.VehicleNodeStatus:
    return vehiclenode.VehicleNodeStatus(
        state=vehiclenode.VehicleState.PARKED,
        battery_percent=42,
        charging=True,
        network=vehiclenode.Network.UNMETERED,
        region="eu-west",
        observed_at=NOW,
        operator=vehiclenode.OperatorStatus(
            eligible=False,
            reasons=[vehiclenode.IneligibleReason.BATTERY_LOW],
            message="battery 42% is below the owner's 50% start threshold",
        ),
    )


def test_get_vn_shows_the_car_at_a_glance(api: httpx.Client, kubectl: m.Kubectl) -> None:
    name = m.unique("car")
    assert api.post(m.url("vehiclenodes"), json=m.car(name)).status_code == 201
    try:
        r = api.patch(
            m.url("vehiclenodes", name=name, sub="status"),
            json={"status": _car_status().to_json()},
            headers=MERGE,
        )
        assert r.status_code == 200, r.text
        rows = _table(kubectl("get", "vn", name).stdout)
        assert rows[0] == [
            "NAME",
            "STATE",
            "BATTERY",
            "CHARGING",
            "ELIGIBLE",
            "REASON",
            "AGE",
            "TRUST",
            "CREDIT",
        ]
        assert rows[1][:6] == [name, "Parked", "42", "true", "false", "BatteryLow"]
        wide = _table(kubectl("get", "vn", name, "-o", "wide").stdout)
        assert wide[0][-3:] == ["REGION", "OWNER", "ACCELERATOR"]
        assert wide[1][-3:] == ["eu-west", "owner-t", "hw4"]
        # selectableFields: the operator and users can filter cars server-side.
        selected = kubectl("get", "vn", "--field-selector", "status.state=Parked", "-o", "name").stdout
        assert f"vehiclenode.curbside.dev/{name}" in selected.split()
        other = kubectl("get", "vn", "--field-selector", "status.state=Driving", "-o", "name").stdout
        assert f"vehiclenode.curbside.dev/{name}" not in other.split()
    finally:
        api.delete(m.url("vehiclenodes", name=name))


def test_get_curbside_lists_both_kinds(api: httpx.Client, namespace: str, kubectl: m.Kubectl) -> None:
    name = m.unique("car")
    assert api.post(m.url("vehiclenodes"), json=m.car(name)).status_code == 201
    assert api.post(m.url("inferencejobs", namespace=namespace), json=m.job("listed")).status_code == 201
    try:
        out = kubectl("get", "curbside", "-A", "-o", "name").stdout.split()
        assert "inferencejob.curbside.dev/listed" in out
        assert f"vehiclenode.curbside.dev/{name}" in out
    finally:
        api.delete(m.url("vehiclenodes", name=name))


def _explain(kubectl: m.Kubectl, what: str) -> str:
    # The OpenAPI document for a new CRD is published a moment after it is Established.
    def explained() -> str:
        done = kubectl("explain", what, check=False)
        return done.stdout if done.returncode == 0 else ""

    return wait.until(explained, timeout=30, what=f"kubectl explain {what}")


def test_explain_reads_like_documentation(kubectl: m.Kubectl) -> None:
    text = _explain(kubectl, "inferencejob.spec")
    assert "What to run, on what, where results go, on which cars." in text
    for field, words in [
        ("model", "-required-"),
        ("input", "-required-"),
        ("output", "-required-"),
        ("redundancy", "Replication and quorum per unit. Immutable."),
        ("placement", "Which cars, how many."),
        ("onNodeDeparture", "enum: Migrate, WaitForDeadline, FailAttempt"),
    ]:
        block = text.split(f"\n  {field}\t", 1)[1].split("\n\n", 1)[0]
        assert words in block, (field, block)
    policy = _explain(kubectl, "vehiclenode.spec.policy.reserveBatteryPercent")
    assert "does not flap" in policy
