"""Hypothesis strategies that draw objects valid under a generated CRD schema.

Why this exists: the property tests must feed the models what the API server would accept,
and the only faithful description of that is the CRD itself (not the models: that would be
circular). This reads ``openAPIV3Schema`` nodes (type, enum, pattern, bounds, maxItems,
list-type set) and builds a strategy; CEL rules are not evaluated, so drawn objects may break
them, and the tests say which refusals that explains.
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

SMALL = 3  # the most items drawn for any list or map: enough to find bugs, fast to run
Json = Any


def _bounded(strategy: st.SearchStrategy[str], node: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = node.get("minLength", 0), node.get("maxLength", 10**9)
    return strategy.filter(lambda s: low <= len(s) <= high)


def _string(node: dict[str, Any]) -> st.SearchStrategy[str]:
    if node.get("format") == "date-time":
        moments = st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        )
        return moments.map(lambda d: d.replace(microsecond=0).isoformat().replace("+00:00", "Z"))
    if "pattern" in node:
        return _bounded(st.from_regex(re.compile(node["pattern"]), fullmatch=True), node)
    low, high = node.get("minLength", 0), min(node.get("maxLength", 40), 40)
    return st.text(alphabet=string.printable, min_size=low, max_size=high)


def _number(node: dict[str, Any]) -> st.SearchStrategy[float | int]:
    low, high = node.get("minimum"), node.get("maximum")
    floats = st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    ints = st.integers(
        min_value=None if low is None else int(low), max_value=None if high is None else int(high)
    )
    return floats | ints


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Json]:
    """A strategy for values valid under the structural schema ``node`` (CEL aside)."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node["type"]
    if kind == "string":
        return _string(node)
    if kind == "integer":
        return st.integers(min_value=node.get("minimum"), max_value=node.get("maximum"))
    if kind == "number":
        return _number(node)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        low = node.get("minItems", 0)
        high = max(low, min(node.get("maxItems", SMALL), SMALL))
        items = from_schema(node["items"])
        unique = node.get("x-kubernetes-list-type") in ("set", "map")
        keys = node.get("x-kubernetes-list-map-keys", [])

        def identity(item: Json) -> tuple[Any, ...]:
            return tuple(item[k] for k in keys) if keys else (repr(item),)

        return st.lists(items, min_size=low, max_size=high, unique_by=identity if unique else None)
    if kind == "object":
        if "additionalProperties" in node:
            high = min(node.get("maxProperties", SMALL), SMALL)
            keys = st.text(alphabet=string.ascii_letters, min_size=1, max_size=8)
            return st.dictionaries(keys, from_schema(node["additionalProperties"]), max_size=high)
        props = node.get("properties", {})
        if not props:
            return st.just({})
        required = set(node.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in props.items() if k in required},
            optional={k: from_schema(v) for k, v in props.items() if k not in required},
        )
    raise AssertionError(f"unknown schema type {kind!r}")


def resource(
    crd: dict[str, Any], *, name: str = "x", namespace: str | None = None
) -> st.SearchStrategy[Json]:
    """Whole objects of the CRD's kind: apiVersion, kind, metadata, then a drawn spec/status."""
    version = crd["spec"]["versions"][0]
    props = version["schema"]["openAPIV3Schema"]["properties"]
    metadata: dict[str, Any] = {"name": name, "generation": 1}
    if namespace is not None:
        metadata["namespace"] = namespace
    return st.fixed_dictionaries(
        {
            "apiVersion": st.just(f"{crd['spec']['group']}/{version['name']}"),
            "kind": st.just(crd["spec"]["names"]["kind"]),
            "metadata": st.just(metadata),
            "spec": from_schema(props["spec"]),
        },
        optional={"status": from_schema(props["status"])},
    )


def paths(value: Json, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every place in a JSON value (dict keys and list indexes), parents before children."""
    out: list[tuple[str | int, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, sub in value.items():
            out += paths(sub, (*prefix, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            out += paths(sub, (*prefix, index))
    return out


ODD_VALUES: st.SearchStrategy[Json] = st.sampled_from(
    [None, "", "x" * 5000, -1, 0, 2**63, 1.5, -0.0, True, [], {}, [1, "a"], {"unknown": 1}, "1e9", "Parked"]
)
