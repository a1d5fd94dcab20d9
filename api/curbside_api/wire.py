"""The dispatcher's wire format: every body a worker sends it and every answer it sends back.

Why this exists: three programs speak this protocol (the dispatcher in the operator, the worker
on each car, and the tests' fake dispatcher). Stating the bodies once, as pydantic models,
keeps their field names, bounds and camelCase spelling in one place instead of three JSON
dialects that drift apart; ``docs/dispatch.md`` is the prose reference.

Requests (``J`` = ``/v1/jobs/{namespace}/{name}``, each with ``Authorization: Bearer``)::

    POST J/lease                  LeaseRequest    -> 200 LeaseResponse | 204
    POST J/units/{u}/renew        RenewRequest    -> 200 RenewResponse
    POST J/units/{u}/complete     CompleteRequest -> 200 CompleteResponse
    POST J/units/{u}/release      ReleaseRequest  -> 200 ReleaseResponse
    GET  /healthz                                 -> 200 HealthResponse

and any refusal is an ``ErrorBody``.

Requests are strict: the dispatcher accepts exactly the documented camelCase names and JSON
types (``"1"`` or ``true`` is no attempt number) and refuses unknown fields, so a validation
error names the offending field. A worker builds its requests with ``model_construct``: the
dispatcher is the one that judges them, and its 400 naming the field is the answer a wrong
request must get. Answers are lenient to read (unknown fields ignored, absent ones defaulted,
a deadline that cannot be read is None), so a worker keeps working against a dispatcher that
says more than it understands.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import pydantic
from pydantic.alias_generators import to_camel

MAX_NAME = 253
"""Longest car or owner name (a Kubernetes object name)."""
MAX_ERROR = 1024
"""Longest ``error`` a worker may report with a release."""


def rfc3339(when: datetime) -> str:
    """``when`` in UTC as the dispatcher writes times: ``2025-03-03T08:00:30Z``."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_deadline(value: Any) -> datetime | None:
    """An RFC 3339 string or epoch seconds as an aware datetime (None if absent or unreadable);
    a time without a zone is taken as UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _time_text(when: datetime | None) -> str | None:
    return None if when is None else rfc3339(when)


def _object(value: Any) -> Any:
    return value or {}


Name = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=MAX_NAME)]
Deadline = Annotated[
    datetime | None,
    pydantic.BeforeValidator(parse_deadline),
    pydantic.PlainSerializer(_time_text, return_type=str | None),
]
JsonObject = Annotated[dict[str, Any], pydantic.BeforeValidator(_object)]


def dump(body: pydantic.BaseModel) -> dict[str, Any]:
    """A request or an answer as the JSON object on the wire: camelCase, absent fields left out.

    Python values are kept as they are (a result's floats are not rewritten), so what is sent
    hashes as the sender hashed it."""
    return body.model_dump(by_alias=True, exclude_none=True)


def dump_json(body: pydantic.BaseModel) -> dict[str, Any]:
    """``dump`` with every value a JSON type (datetimes as RFC 3339 text): an answer to send."""
    return body.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- requests --------------------------------------------------------------------------------
class Request(pydantic.BaseModel):
    """Every request names the car it comes from (and its token must be that car's)."""

    model_config = pydantic.ConfigDict(alias_generator=to_camel, extra="forbid", strict=True, frozen=True)

    car: Name


class LeaseRequest(Request):
    """Ask for a unit. ``owner`` is the car's claim; the dispatcher believes its own fleet view."""

    owner: Name


class AttemptRequest(Request):
    """A request about one attempt the car holds."""

    attempt: int = pydantic.Field(ge=1)


class RenewRequest(AttemptRequest):
    """Push the attempt's deadline out."""


class ReleaseRequest(AttemptRequest):
    """Give the unit back; with ``error`` the attempt counts as failed."""

    error: str | None = pydantic.Field(None, max_length=MAX_ERROR)


class CompleteRequest(AttemptRequest):
    """Submit the attempt's result: ``output_hash`` is the SHA-256 of its canonical JSON."""

    output_hash: str = pydantic.Field(pattern=r"^[0-9a-f]{64}$")
    result: dict[str, Any]


# -- answers ---------------------------------------------------------------------------------
class Answer(pydantic.BaseModel):
    """Base of the dispatcher's answers: camelCase on the wire, lenient to read."""

    model_config = pydantic.ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class LeaseResponse(Answer):
    """Work on ``unit`` as attempt ``attempt`` until ``deadline``. ``resumed``: the car already
    held this attempt (a retried lease whose reply was lost)."""

    unit: int
    attempt: int
    deadline: Deadline = None
    resumed: bool = False
    input: JsonObject = pydantic.Field(default_factory=dict)


class RenewResponse(Answer):
    deadline: Deadline = None


class CompleteResponse(Answer):
    """``committed`` is False while a replicated unit waits for a quorum; ``commit_id`` is then
    the id the unit will have if this output wins."""

    commit_id: str = ""
    duplicate: bool = False
    committed: bool = True
    result_ref: str = ""


class ReleaseResponse(Answer):
    """``released`` is False when the attempt was no longer live (a release is idempotent)."""

    released: bool = False


class HealthResponse(Answer):
    ok: bool
    jobs: int
    served: int


class ErrorBody(Answer):
    """A refusal. ``error`` is its kind (``BadRequest``, ``Unauthorized``, ``Forbidden``,
    ``NotFound``, ``Quarantined``, ``Fenced``, ``TooLarge`` (413), ``QuotaExceeded`` (429),
    ``ResultStoreError``, ``Unavailable``); a ``BadRequest`` or ``TooLarge`` names its
    ``field``, a ``Fenced`` its ``unit`` and ``attempt``."""

    error: str
    message: str = ""
    field: str | None = None
    unit: int | None = None
    attempt: int | None = None

    def text(self) -> str:
        """One line for a log: the kind and the message."""
        return " ".join(part for part in (self.error, self.message) if part)
