"""Property tests: whatever the API server would accept, or one field off from it, parsing
either succeeds or raises InvalidSpecError naming fields. Never anything else.

Objects are drawn from the generated CRDs (see crd_strategies.py), so the models are tested
against the contract the API server enforces, not against themselves.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curbside_api import base
from curbside_api.v1alpha1 import inferencejob, vehiclenode
from curbside_gen import crds
from tests.support import crd_strategies

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Where a CEL rule lives: the schema alone cannot keep drawn objects from breaking these.
CEL_PATHS = {
    "InferenceJob": re.compile(r"^spec\.(input|redundancy\.quorum)$"),
    "VehicleNode": re.compile(r"^spec\.policy\.(reserveBatteryPercent|timeWindows\[\d+\]\.end)$"),
}
CASES = [
    pytest.param(
        inferencejob.InferenceJob,
        crd_strategies.resource(crds.crd(inferencejob.InferenceJob), namespace="ns"),
        id="InferenceJob",
    ),
    pytest.param(
        vehiclenode.VehicleNode,
        crd_strategies.resource(crds.crd(vehiclenode.VehicleNode)),
        id="VehicleNode",
    ),
]


@pytest.mark.parametrize(("model", "objects"), CASES)
def test_schema_valid_objects_parse_unless_a_cel_rule_is_broken(
    model: type[base.Resource], objects: st.SearchStrategy[Any]
) -> None:
    @SETTINGS
    @given(objects)
    def check(body: dict[str, Any]) -> None:
        parsed = _parse(model, body)
        if isinstance(parsed, base.InvalidSpecError):
            unexplained = [e for e in parsed.errors if not CEL_PATHS[model.crd.kind].match(e.path)]
            assert not unexplained, f"the model refuses what the CRD allows: {unexplained}"
        else:
            assert model.from_body(parsed.to_json()) == parsed

    check()


def _parse(model: type[base.Resource], body: Any) -> base.Resource | base.InvalidSpecError:
    """The parsed object or our error; any other exception escapes and fails the test."""
    try:
        return model.from_body(body)
    except base.InvalidSpecError as exc:
        return exc


def _mutate(body: dict[str, Any], path: tuple[str | int, ...], *, how: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    parent: Any = out
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "unknown-key" and isinstance(parent, dict):
        parent[f"{last}Typo"] = value
    else:
        parent[last] = value
    return out


@pytest.mark.parametrize(("model", "objects"), CASES)
def test_one_field_off_gives_our_error_or_a_valid_object(
    model: type[base.Resource], objects: st.SearchStrategy[Any]
) -> None:
    @SETTINGS
    @given(st.data())
    def check(data: st.DataObject) -> None:
        body = data.draw(objects)
        places = [p for p in crd_strategies.paths(body) if p[0] in ("spec", "status")]
        path = data.draw(st.sampled_from(places))
        how = data.draw(st.sampled_from(["replace", "delete", "unknown-key"]))
        mutated = _mutate(body, path, how=how, value=data.draw(crd_strategies.ODD_VALUES))
        parsed = _parse(model, mutated)
        if isinstance(parsed, base.InvalidSpecError):
            assert parsed.errors
            assert all(e.path and e.message for e in parsed.errors)
            assert str(parsed).startswith(f"{model.crd.kind} ")

    check()


@SETTINGS
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=8,
    )
)
def test_arbitrary_json_gives_our_error(body: Any) -> None:
    for model in (inferencejob.InferenceJob, vehiclenode.VehicleNode):
        with pytest.raises(base.InvalidSpecError):
            model.from_body(body)
