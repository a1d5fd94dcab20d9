"""Bad input is refused at the door: the API server answers with the field's name and
creates nothing.

Each row is a valid manifest with one thing wrong. Requests use ``fieldValidation=Strict``,
as ``kubectl apply`` does. Almost every refusal is 422 Unprocessable Entity (schema or CEL);
unknown fields are refused by the API server's strict decoder before validation, with 400
Bad Request, still naming the field (a structural schema cannot refuse them itself: unknown
fields are pruned, and pruning happens before validation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import manifests as m

STRICT = {"fieldValidation": "Strict"}
D = m.DELETE


@dataclass(frozen=True)
class Bad:
    id: str
    kind: str  # "job" or "car"
    changes: dict[str, Any]
    field: str  # the API server must name this field
    code: int = 422


CASES = [
    # wrong types
    Bad("units-is-a-string", "job", {"spec.input.generated.units": "ten"}, "spec.input.generated.units"),
    Bad("spec-is-a-string", "job", {"spec": "run it"}, "spec"),
    Bad("priority-is-a-float", "job", {"spec.priority": 1.5}, "spec.priority"),
    Bad(
        "accelerators-is-a-string",
        "job",
        {"spec.placement": {"accelerators": "hw4"}},
        "spec.placement.accelerators",
    ),
    Bad("tops-is-a-string", "car", {"spec.hardware.tops": "lots"}, "spec.hardware.tops"),
    # out-of-range numbers
    Bad("ten-replicas", "job", {"spec.redundancy": {"replicas": 10}}, "spec.redundancy.replicas"),
    Bad("zero-units", "job", {"spec.input.generated.units": 0}, "spec.input.generated.units"),
    Bad("zero-unit-timeout", "job", {"spec.unitTimeoutSeconds": 0}, "spec.unitTimeoutSeconds"),
    Bad("tolerance-above-one", "job", {"spec.redundancy": {"tolerance": 2}}, "spec.redundancy.tolerance"),
    Bad("priority-1000", "job", {"spec.priority": 1000}, "spec.priority"),
    Bad("battery-101", "car", {"spec.policy": {"minBatteryPercent": 101}}, "spec.policy.minBatteryPercent"),
    Bad(
        "negative-energy",
        "car",
        {"spec.policy": {"maxEnergyKwhPerDay": -1}},
        "spec.policy.maxEnergyKwhPerDay",
    ),
    # unknown enum values
    Bad("departure-teleport", "job", {"spec.onNodeDeparture": "Teleport"}, "spec.onNodeDeparture"),
    Bad(
        "weekday-funday",
        "car",
        {"spec.policy": {"timeWindows": [{"days": ["Funday"], "start": "08:00", "end": "09:00"}]}},
        "spec.policy.timeWindows[0].days[0]",
    ),
    # unknown fields
    Bad("unknown-spec-field", "job", {"spec.colour": "red"}, 'unknown field "spec.colour"', code=400),
    Bad(
        "unknown-nested-field",
        "job",
        {"spec.model.weights": "x"},
        'unknown field "spec.model.weights"',
        code=400,
    ),
    Bad(
        "unknown-car-field",
        "car",
        {"spec.vehicle.colour": "red"},
        'unknown field "spec.vehicle.colour"',
        code=400,
    ),
    # missing required fields
    Bad("no-spec", "job", {"spec": D}, "spec"),
    Bad("no-model", "job", {"spec.model": D}, "spec.model"),
    Bad("no-output-uri", "job", {"spec.output": {}}, "spec.output.uri"),
    Bad("no-hardware", "car", {"spec.hardware": D}, "spec.hardware"),
    # cross-field rules (CEL)
    Bad(
        "quorum-over-replicas",
        "job",
        {"spec.redundancy": {"replicas": 2, "quorum": 3}},
        "spec.redundancy.quorum",
    ),
    Bad("quorum-over-default-replicas", "job", {"spec.redundancy": {"quorum": 2}}, "spec.redundancy.quorum"),
    Bad("no-input-source", "job", {"spec.input": {}}, "spec.input"),
    Bad("two-input-sources", "job", {"spec.input.inline": {"items": ["a"]}}, "spec.input"),
    Bad(
        "reserve-not-below-start",
        "car",
        {"spec.policy": {"minBatteryPercent": 50, "reserveBatteryPercent": 50}},
        "spec.policy.reserveBatteryPercent",
    ),
    Bad(
        "reserve-above-default-start",
        "car",
        {"spec.policy": {"reserveBatteryPercent": 60}},
        "spec.policy.reserveBatteryPercent",
    ),
    Bad(
        "empty-time-window",
        "car",
        {"spec.policy": {"timeWindows": [{"start": "08:00", "end": "08:00"}]}},
        "spec.policy.timeWindows[0].end",
    ),
    # malformed strings
    Bad("output-not-a-uri", "job", {"spec.output.uri": "results"}, "spec.output.uri"),
    Bad("model-name-path", "job", {"spec.model.name": "../etc"}, "spec.model.name"),
    Bad("vin-too-short", "car", {"spec.vehicle.vin": "1234"}, "spec.vehicle.vin"),
    Bad(
        "clock-25-oclock",
        "car",
        {"spec.policy": {"timeWindows": [{"start": "25:00", "end": "08:00"}]}},
        "spec.policy.timeWindows[0].start",
    ),
    # absurd sizes
    Bad(
        "100k-inline-items",
        "job",
        {"spec.input": {"inline": {"items": ["a"] * 100_000}}},
        "spec.input.inline.items",
    ),
    Bad(
        "100k-char-item",
        "job",
        {"spec.input": {"inline": {"items": ["a" * 100_000]}}},
        "spec.input.inline.items[0]",
    ),
    Bad(
        "1000-regions",
        "job",
        {"spec.placement": {"regions": [f"r{i}" for i in range(1000)]}},
        "spec.placement.regions",
    ),
    Bad("1k-char-model-name", "job", {"spec.model.name": "m" * 1000}, "spec.model.name"),
    Bad(
        "duplicate-accelerator",
        "job",
        {"spec.placement": {"accelerators": ["hw4", "hw4"]}},
        "spec.placement.accelerators[1]",
    ),
    Bad("units-beyond-10m", "job", {"spec.input.generated.units": 10**12}, "spec.input.generated.units"),
]


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json().get("message", r.text))
    except ValueError:
        return r.text


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_manifest_is_refused_naming_the_field(api: httpx.Client, namespace: str, case: Bad) -> None:
    name = m.unique(case.id)[:63]
    if case.kind == "job":
        body, plural, ns = m.changed(m.job(name), case.changes), "inferencejobs", namespace
    else:
        body, plural, ns = m.changed(m.car(name), case.changes), "vehiclenodes", None
    r = api.post(m.url(plural, namespace=ns), params=STRICT, json=body)
    try:
        assert r.status_code == case.code, f"{r.status_code}: {_message(r)}"
        assert case.field in _message(r), _message(r)
    finally:
        if r.status_code == 201:
            api.delete(m.url(plural, namespace=ns, name=name))
    assert api.get(m.url(plural, namespace=ns, name=name)).status_code == 404, "created anyway"


def test_table_is_large_and_covers_every_category() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.kind for c in CASES} == {"job", "car"}


IMMUTABLE = [
    pytest.param("job", {"spec.model.name": "other"}, "spec.model", id="job-model"),
    pytest.param("job", {"spec.input.generated.units": 11}, "spec.input", id="job-input"),
    pytest.param("job", {"spec.output.uri": "s3://elsewhere/x"}, "spec.output", id="job-output"),
    pytest.param(
        "job", {"spec.redundancy": {"replicas": 3, "quorum": 2}}, "spec.redundancy", id="job-redundancy"
    ),
    pytest.param("car", {"spec.vehicle.vin": "5YJ3E1EA7KF317999"}, "spec.vehicle.vin", id="car-vin"),
]


@pytest.mark.parametrize(("kind", "changes", "field"), IMMUTABLE)
def test_immutable_fields_cannot_change(
    api: httpx.Client, namespace: str, kind: str, changes: dict[str, Any], field: str
) -> None:
    name = m.unique(f"immutable-{kind}")
    plural, ns = ("inferencejobs", namespace) if kind == "job" else ("vehiclenodes", None)
    original = m.job(name) if kind == "job" else m.car(name)
    created = api.post(m.url(plural, namespace=ns), params=STRICT, json=original)
    assert created.status_code == 201, created.text
    try:
        stored = created.json()
        r = api.put(m.url(plural, namespace=ns, name=name), params=STRICT, json=m.changed(stored, changes))
        assert r.status_code == 422, r.text
        assert f"{field}: Invalid value" in _message(r)
        assert "immutable" in _message(r)
        after = api.get(m.url(plural, namespace=ns, name=name)).json()
        assert after["spec"] == stored["spec"]
        assert after["metadata"]["generation"] == 1
    finally:
        api.delete(m.url(plural, namespace=ns, name=name))


def test_mutable_fields_can_change(api: httpx.Client, namespace: str) -> None:
    created = api.post(m.url("inferencejobs", namespace=namespace), params=STRICT, json=m.job("mutable"))
    assert created.status_code == 201, created.text
    patch = {"spec": {"priority": 50, "maxAttempts": 5, "placement": {"maxCars": 7, "regions": ["eu-west"]}}}
    r = api.patch(
        m.url("inferencejobs", namespace=namespace, name="mutable"),
        params=STRICT,
        json=patch,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["placement"] == {"maxCars": 7, "maxUnitsPerCar": 1, "regions": ["eu-west"]}
    assert r.json()["metadata"]["generation"] == 2


BAD_STATUS = [
    pytest.param("car", {"batteryPercent": 120}, "status.batteryPercent", id="battery-120"),
    pytest.param("car", {"state": "Flying"}, "status.state", id="state-flying"),
    pytest.param(
        "car", {"operator": {"reasons": ["battery-low"]}}, "status.operator.reasons[0]", id="reason-kebab"
    ),
    pytest.param("job", {"completedUnits": "0-9;x"}, "status.completedUnits", id="completed-units-garbage"),
    pytest.param(
        "job",
        {
            "conditions": [
                {
                    "type": "Running",
                    "status": "Yes",
                    "reason": "UnitsRunning",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ]
        },
        "status.conditions[0].status",
        id="condition-status-yes",
    ),
]


@pytest.mark.parametrize(("kind", "status", "field"), BAD_STATUS)
def test_invalid_status_is_refused(
    api: httpx.Client, namespace: str, kind: str, status: dict[str, Any], field: str
) -> None:
    name = m.unique(f"status-{kind}")
    plural, ns = ("inferencejobs", namespace) if kind == "job" else ("vehiclenodes", None)
    created = api.post(m.url(plural, namespace=ns), json=m.job(name) if kind == "job" else m.car(name))
    assert created.status_code == 201, created.text
    try:
        r = api.patch(
            m.url(plural, namespace=ns, name=name, sub="status"),
            params=STRICT,
            json={"status": status},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert r.status_code == 422, r.text
        assert field in _message(r), _message(r)
        assert not api.get(m.url(plural, namespace=ns, name=name)).json().get("status")
    finally:
        api.delete(m.url(plural, namespace=ns, name=name))
