"""A car's record from the ledger (trust, credit, quarantine) as its VehicleNode shows it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator.controllers import standings
from curbside_operator.facts import Standing
from curbside_operator.reconcile import vehiclenode as car
from tests.support.cars import GRACE, NOW, applied, lease, make_car, node


def standing(**fields: object) -> Standing:
    base: dict[str, object] = {
        "car": "car-1",
        "owner": "alice",
        "valid": 0,
        "invalid": 0,
        "streak": 0,
        "trusted": (),
        "credit_seconds": 0.0,
        "energy_joules": 0.0,
        "quarantine": None,
    }
    return Standing(**(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "level"),
    [
        ({}, vn.TrustLevel.UNTRUSTED),
        ({"valid": 3, "streak": 3}, vn.TrustLevel.PROBATION),
        ({"valid": 12, "streak": 12, "trusted": ("seti:1",)}, vn.TrustLevel.TRUSTED),
        ({"valid": 12, "streak": 12, "trusted": ("seti:1",), "quarantine": "x"}, vn.TrustLevel.QUARANTINED),
        ({"valid": 5, "invalid": 1, "streak": 0}, vn.TrustLevel.UNTRUSTED),
    ],
    ids=["new", "probation", "trusted", "quarantine-wins", "reset"],
)
def test_trust_level_follows_the_record(fields: dict[str, object], level: vn.TrustLevel) -> None:
    trust, _ = standings.record_of(standing(**fields))
    assert trust.level == level


def test_credit_and_error_rate_are_reported_in_owner_units() -> None:
    trust, credit = standings.record_of(
        standing(valid=3, invalid=1, credit_seconds=12.345, energy_joules=7.2e6)
    )
    assert trust.error_rate == 0.25
    assert (credit.validated_units, credit.rejected_units) == (3, 1)
    assert (credit.compute_seconds, credit.energy_kwh) == (12.3, 2.0)


def test_a_quarantined_car_is_ineligible_with_the_reason_first() -> None:
    trust, credit = standings.record_of(standing(quarantine="missed the known answer of a check unit"))
    labelled = node(eligible="true")
    plan = car.reconcile_car(
        make_car(), lease=lease(2), node=labelled, now=NOW, grace=GRACE, trust=trust, credit=credit
    )
    assert plan.status_patch is not None
    op = plan.status_patch["status"]["operator"]
    assert op["reasons"] == ["Quarantined"]
    assert op["eligible"] is False
    assert op["message"].startswith("Quarantined: missed the known answer")
    assert op["trust"]["quarantineReason"] == "missed the known answer of a check unit"
    assert plan.node_patch == {"metadata": {"labels": {car.ELIGIBLE_LABEL: None}}}


def test_new_credit_is_written_and_the_same_record_again_is_not() -> None:
    vehicle = make_car()
    first = car.reconcile_car(vehicle, lease=lease(2), node=node(), now=NOW, grace=GRACE)
    vehicle = applied(vehicle, first.status_patch)
    trust, credit = standings.record_of(standing(valid=1, streak=1, credit_seconds=4.0))
    later = NOW + timedelta(seconds=3)
    more = car.reconcile_car(
        vehicle, lease=lease(2), node=node(), now=later, grace=GRACE, trust=trust, credit=credit
    )
    assert more.status_patch is not None
    assert more.status_patch["status"]["operator"]["credit"]["computeSeconds"] == 4.0
    vehicle = applied(vehicle, more.status_patch)
    again = car.reconcile_car(
        vehicle, lease=lease(2), node=node(), now=later, grace=GRACE, trust=trust, credit=credit
    )
    assert again.status_patch is None
    unchanged = car.reconcile_car(vehicle, lease=lease(2), node=node(), now=later, grace=GRACE)
    assert unchanged.status_patch is None  # no record handed over: keep what the status says
