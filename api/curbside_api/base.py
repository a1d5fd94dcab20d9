"""What every Curbside resource model shares: camelCase wire names, metadata, parsing, CRD facts.

Why this exists: the kind files (``v1alpha1/vehiclenode.py``, ``v1alpha1/inferencejob.py``)
should read top-down like a ``_types.go`` and hold nothing but their kind. The plumbing they
all need lives here once:

- ``ApiModel``: the pydantic base (snake_case in Python, camelCase on the wire, unknown fields
  refused, so a typo in Python is as loud as one in ``kubectl apply``).
- ``ObjectMeta``: the few metadata fields the operator reads; the rest is ignored.
- ``InvalidSpecError``: the one exception parsing raises, with field paths in API notation
  (``spec.redundancy.quorum``), so the operator can put it in a ``Failed`` condition as is.
- ``CrdInfo``/``PrinterColumn`` and ``rule``/``immutable``: facts and CEL rules that the
  generator (``crdgen.py``) copies into the CRD. They are plain data; this module knows
  nothing about YAML or the API server.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal, Self

import pydantic
from pydantic.alias_generators import to_camel

# Bounds shared by both kinds (Kubernetes' own limits where there is one).
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
CAMEL_CASE = r"^[A-Z][A-Za-z0-9]*$"
MAX_NAME = 63
MAX_MESSAGE = 1024
MAX_URI = 1024


class ApiModel(pydantic.BaseModel):
    """Base of every model: camelCase aliases on the wire, unknown fields refused."""

    model_config = pydantic.ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
    )

    def to_json(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, no nulls, JSON types."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ObjectMeta(pydantic.BaseModel):
    """The metadata fields Curbside reads. Anything else the API server sends is ignored."""

    model_config = pydantic.ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    finalizers: list[str] = pydantic.Field(default_factory=list)
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One reason a body was refused: where (``spec.redundancy.quorum``) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidSpecError(ValueError):
    """A resource body does not match its model. ``errors`` names every offending field.

    The message is one line, fit for a condition message or an Event:
    ``InferenceJob demo/seti: spec.redundancy.quorum: quorum (3) must not exceed replicas (2)``.
    """

    def __init__(self, *, kind: str, name: str, errors: list[FieldError]) -> None:
        self.kind = kind
        self.name = name
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{kind} {name}: {shown}{more}")

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.errors]


def _inner_model(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The model inside ``X | None``, ``list[X]`` or ``dict[str, X]``, if there is one."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _path(model: type[pydantic.BaseModel] | None, loc: tuple[int | str, ...]) -> str:
    """``("spec", "policy", "reserve_battery_percent")`` -> ``spec.policy.reserveBatteryPercent``.

    pydantic reports aliases for fields it was given but Python names for defaults it
    validated, so each part is looked up in the model it belongs to.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = part
        fields = model.model_fields if model is not None else {}
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if field is not None:
            name = field.alias or part
            model = _inner_model(field.annotation)
        else:
            model = None
        out += f".{name}" if out else name
    return out or "<root>"


def field_errors(
    exc: pydantic.ValidationError, model: type[pydantic.BaseModel] | None = None
) -> list[FieldError]:
    """pydantic's errors as API-style field paths (camelCase wire names, not Python names)."""
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        message = str(err["msg"]).removeprefix("Value error, ")
        errors.append(FieldError(path=_path(model, tuple(err["loc"])), message=message))
    return errors


def _display_name(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata")
    if not isinstance(meta, Mapping):
        return "<unnamed>"
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str):
        return "<unnamed>"
    return f"{namespace}/{name}" if isinstance(namespace, str) else name


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    """One ``kubectl get`` column (``additionalPrinterColumns``). Positional on purpose: the
    kinds list their columns as rows of a table (name, JSON path, type, description)."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    description: str
    priority: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class CrdInfo:
    """The CRD facts that are not part of the schema: names, scope and columns."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    scope: Literal["Namespaced", "Cluster"]
    printer_columns: tuple[PrinterColumn, ...]
    selectable_fields: tuple[str, ...] = ()
    """JSON paths usable in ``kubectl get --field-selector`` (string, integer or boolean fields)."""

    @property
    def singular(self) -> str:
        return self.kind.lower()


class Resource(ApiModel):
    """A whole object (apiVersion, kind, metadata, spec, status) of one Curbside kind."""

    crd: ClassVar[CrdInfo]

    metadata: ObjectMeta = pydantic.Field(default_factory=ObjectMeta, description="Standard object metadata.")

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        """Parse an object as the API server (or kopf) hands it over.

        Raises ``InvalidSpecError`` naming every bad field, and nothing else: not for a
        non-mapping body, not for wrong types, not for broken cross-field rules.
        """
        kind = cls.crd.kind
        if not isinstance(body, Mapping):
            raise InvalidSpecError(
                kind=kind, name="<unnamed>", errors=[FieldError("<root>", "expected an object")]
            )
        try:
            return cls.model_validate(dict(body))
        except pydantic.ValidationError as exc:
            raise InvalidSpecError(
                kind=kind, name=_display_name(body), errors=field_errors(exc, cls)
            ) from exc


def rule(cel: str, message: str, *, field_path: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry; ``field_path`` names the field in the error."""
    out = {"rule": cel, "message": message}
    if field_path is not None:
        out["fieldPath"] = field_path
    return out


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` that carries CEL rules into the generated CRD."""
    return {"x-kubernetes-validations": list(rules)}


def immutable(what: str) -> dict[str, Any]:
    """``json_schema_extra`` for a field that cannot change after creation (a transition rule)."""
    return validations(rule("self == oldSelf", f"{what} is immutable: create a new object to change it"))


def list_type(kind: Literal["atomic", "set", "map"], *keys: str) -> dict[str, Any]:
    """``json_schema_extra`` for how server-side apply merges a list."""
    out: dict[str, Any] = {"x-kubernetes-list-type": kind}
    if keys:
        out["x-kubernetes-list-map-keys"] = list(keys)
    return out
