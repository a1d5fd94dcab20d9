"""Turn the typed models into CustomResourceDefinitions: ``python -m curbside_gen.crds``.

Why this exists: the models in ``v1alpha1/`` are the single source of truth. The API server
needs their shape as a *structural* OpenAPI v3 schema, which is stricter than the JSON
Schema pydantic emits, so this module translates:

- ``$ref``/``$defs`` are inlined (structural schemas have no references);
- ``anyOf: [X, null]`` (an optional field) becomes X, and ``default: null`` goes away;
- ``title`` and ``additionalProperties: false`` go (unknown fields are pruned by the API
  server and refused by ``kubectl``'s strict field validation); numeric
  ``exclusiveMinimum: n`` becomes ``minimum: n, exclusiveMinimum: true``;
- inside ``spec``, an optional object whose fields all have defaults gets those defaults as
  its own default, so an omitted ``redundancy`` is stored as ``{replicas: 1, quorum: 1, ...}``
  and ``kubectl get -o yaml`` shows the values in force;
- bounds and defaults are appended to descriptions ("1 to 20, default 3."), since
  ``kubectl explain`` shows descriptions and nothing else;
- CEL rules (``x-kubernetes-validations``) declared on a class and on a field that uses it
  are concatenated, class rules first.

Anything it cannot translate (a real union, a node without a type) is an error here, not a
CRD the API server refuses later. The output is deterministic (sorted keys), so ``make
verify`` can regenerate and ``git diff --exit-code``. Writing and checking the files is
``curbside_gen.output``'s job.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

import curbside_api as api
from curbside_api import base, v1alpha1
from curbside_gen import output

HEADER = output.HEADER
SOURCE = "api/curbside_api/v1alpha1/"
DROPPED = frozenset({"title", "$defs", "readOnly", "writeOnly", "examples"})
RULES = "x-kubernetes-validations"


class GeneratorError(output.GeneratorError):
    """A model uses something a structural CRD schema cannot express; the message says where."""


def _resolve(node: dict[str, Any], defs: dict[str, Any], *, path: str) -> dict[str, Any]:
    """Inline ``$ref`` and unwrap ``anyOf: [X, null]``; sibling keys win over the target's."""
    while "$ref" in node or "anyOf" in node:
        rest = {k: v for k, v in node.items() if k not in ("$ref", "anyOf")}
        if "$ref" in node:
            target = dict(defs[node["$ref"].rsplit("/", 1)[-1]])
        else:
            options = [o for o in node["anyOf"] if o != {"type": "null"}]
            if len(options) != 1:
                raise GeneratorError(f"{path}: unions are not structural; use one type and a CEL rule")
            target = dict(options[0])
        rules = target.get(RULES, []) + rest.get(RULES, [])
        node = {**target, **rest}
        if rules:
            node[RULES] = rules
    return node


def _all_defaulted(node: dict[str, Any]) -> bool:
    return node.get("type") == "object" and bool(node.get("properties")) and not node.get("required")


def _filled(node: dict[str, Any]) -> dict[str, Any]:
    """The object that defaulting would produce from ``{}``, spelled out: the API server checks
    a default against the CEL rules as written, without applying nested defaults first."""
    return {name: sub["default"] for name, sub in node["properties"].items() if "default" in sub}


def _convert(
    raw: dict[str, Any], defs: dict[str, Any], *, path: str, in_spec: bool, optional: bool = False
) -> dict[str, Any]:
    explicit_null_default = "default" in raw and raw["default"] is None
    node = _resolve(raw, defs, path=path)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED or (key == "default" and value is None):
            continue
        if key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _convert(value, defs, path=f"{path}[*]", in_spec=in_spec)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "const":
            out["enum"] = [value]
        elif key == "description":
            out[key] = " ".join(str(value).split())
        elif key == "properties":
            required = set(node.get("required", []))
            out[key] = {
                name: _convert(
                    sub,
                    defs,
                    path=f"{path}.{name}",
                    in_spec=in_spec or (path == "" and name == "spec"),
                    optional=name not in required,
                )
                for name, sub in value.items()
            }
        elif key == "items":
            out[key] = _convert(value, defs, path=f"{path}[]", in_spec=in_spec)
        else:
            out[key] = value
    if in_spec and optional and "default" not in out and not explicit_null_default and _all_defaulted(out):
        out["default"] = _filled(out)
    facts = _facts(out)
    if facts and "description" in out:
        out["description"] = f"{out['description']} {facts}"
    _check_structural(out, path)
    return out


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _facts(node: dict[str, Any]) -> str:
    """Bounds and default as a sentence, because ``kubectl explain`` shows only descriptions."""
    parts = []
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None and high is not None:
        parts.append(f"{_show(low)} to {_show(high)}")
    elif low is not None:
        parts.append(f"at least {_show(low)}")
    elif high is not None:
        parts.append(f"at most {_show(high)}")
    if "maxItems" in node:
        parts.append(f"at most {node['maxItems']} items")
    default = node.get("default")
    if default is not None and not isinstance(default, dict | list) and default != "":
        parts.append(f"default {_show(default)}")
    sentence = ", ".join(parts)
    return sentence[:1].upper() + sentence[1:] + "." if sentence else ""


def _check_structural(node: dict[str, Any], path: str) -> None:
    if "type" not in node:
        raise GeneratorError(f"{path or '<root>'}: no type (structural schemas need one on every node)")
    if node["type"] == "object" and "properties" in node and "additionalProperties" in node:
        raise GeneratorError(f"{path}: properties and additionalProperties together are not structural")
    if node.get("uniqueItems"):
        raise GeneratorError(f"{path}: uniqueItems is not allowed; use x-kubernetes-list-type: set")


def schema(model: type[base.Resource]) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``model``: structural, with descriptions, defaults and CEL."""
    raw = model.model_json_schema(by_alias=True)
    out = _convert(raw, raw.get("$defs", {}), path="", in_spec=False)
    out["properties"]["apiVersion"] = {
        "type": "string",
        "description": "The versioned schema of this object: curbside.dev/v1alpha1.",
    }
    out["properties"]["kind"] = {
        "type": "string",
        "description": f"The kind of this object: {model.crd.kind}.",
    }
    out["properties"]["metadata"] = {"type": "object"}
    out["required"] = ["spec"]
    return out


def crd(model: type[base.Resource]) -> dict[str, Any]:
    """The whole CustomResourceDefinition of ``model``."""
    info = model.crd
    columns = [
        {
            "name": c.name,
            "type": c.type,
            "jsonPath": c.json_path,
            "description": c.description,
            **({"priority": c.priority} if c.priority else {}),
        }
        for c in info.printer_columns
    ]
    version: dict[str, Any] = {
        "name": v1alpha1.VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema(model)},
        "subresources": {"status": {}},
        "additionalPrinterColumns": columns,
    }
    if info.selectable_fields:
        version["selectableFields"] = [{"jsonPath": p} for p in info.selectable_fields]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": list(api.CATEGORIES),
            },
            "scope": info.scope,
            "versions": [version],
        },
    }


def render(model: type[base.Resource]) -> str:
    """The CRD file's text: header, source, YAML with sorted keys."""
    body = yaml.safe_dump(crd(model), sort_keys=True, allow_unicode=True, width=100)
    source = f"# Source: {SOURCE}{model.__module__.rsplit('.', 1)[-1]}.py\n"
    return HEADER + source + body


def repo_root() -> Path:
    """The checkout the generators live in (the default ``--out``)."""
    return output.repo_root()


def outputs(root: Path) -> dict[Path, str]:
    """Every generated file under ``root`` and its text: ``crds/`` and the chart's copy if any."""
    dirs = [root / "crds"]
    if (root / "charts" / "curbside" / "Chart.yaml").is_file():
        dirs.append(root / "charts" / "curbside" / "crds")
    files = {f"{m.crd.plural}.{api.GROUP}.yaml": render(m) for m in v1alpha1.RESOURCES}
    return {d / name: text for d in dirs for name, text in files.items()}


def generate(root: Path, *, check: bool) -> list[str]:
    """Write (or with ``check`` only compare) the CRD files; return what differed. A YAML file
    beside them that starts with ``HEADER`` and that no model produces any more is deleted."""
    return output.sync(root, outputs(root), check=check, pattern="*.yaml", ours=output.has_header)


def main(argv: Sequence[str] | None = None) -> int:
    return output.main(
        argv, prog="python -m curbside_gen.crds", description=__doc__.splitlines()[0], generators=[generate]
    )


if __name__ == "__main__":
    sys.exit(main())
