"""Held cars share pydantic's fields-sets, and nothing a reconciler does leaks between cars."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pydantic

from curbside_api import conditions as conds
from curbside_api import sharing
from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator.controllers.fleet import hold_car
from curbside_operator.reconcile import vehiclenode as car
from tests.support.cars import GRACE, NOW, lease, make_car, node


def _body(**status: Any) -> dict[str, Any]:
    return make_car(**status).model_dump(mode="json", by_alias=True, exclude_none=True)


def _models(model: pydantic.BaseModel) -> list[pydantic.BaseModel]:
    found = [model]
    for value in model.__dict__.values():
        items = value if isinstance(value, list) else [value]
        found += [m for item in items if isinstance(item, pydantic.BaseModel) for m in _models(item)]
    return found


def test_cars_of_one_shape_share_every_fields_set_and_read_the_same() -> None:
    first, second = hold_car(_body()), hold_car(_body(batteryPercent=55))
    parsed = vn.VehicleNode.from_body(_body(batteryPercent=55))
    assert second.model_dump() == parsed.model_dump()  # sharing changes no value
    assert second.model_dump(exclude_unset=True) == parsed.model_dump(exclude_unset=True)
    pairs = list(zip(_models(first), _models(second), strict=True))
    assert len(pairs) >= 8  # the car, its metadata, spec and status, and the parts of those
    assert all(a.__pydantic_fields_set__ is b.__pydantic_fields_set__ for a, b in pairs)
    before = sharing.shared_sets()
    hold_car(_body(batteryPercent=60))
    assert sharing.shared_sets() == before  # one more car of the same shape holds no new set


def test_a_car_given_other_fields_gets_its_own_sets() -> None:
    plain, charging = hold_car(_body()), hold_car(_body(chargerPowerKw=11.0))
    assert plain.status.__pydantic_fields_set__ is not charging.status.__pydantic_fields_set__
    assert "charger_power_kw" in charging.status.model_fields_set
    assert "charger_power_kw" not in plain.status.model_fields_set


def test_reconciling_a_held_car_changes_no_other_car() -> None:
    held, other = hold_car(_body()), hold_car(_body())
    untouched = other.model_dump(exclude_unset=True)
    plan = car.reconcile_car(held, lease=lease(2), node=node(), now=NOW, grace=GRACE)
    assert plan.status_patch is not None  # it changed its conditions and operator status (copies)
    ready = next(c for c in plan.status_patch["status"]["conditions"] if c["type"] == conds.READY)
    assert ready["status"] == conds.Status.TRUE.value
    assert other.model_dump(exclude_unset=True) == untouched
    later = car.reconcile_car(
        other, lease=lease(30), node=node(), now=NOW + timedelta(seconds=5), grace=GRACE
    )
    assert later.status_patch is not None
    assert later.status_patch["status"]["operator"]["reasons"] == ["LeaseExpired"]
