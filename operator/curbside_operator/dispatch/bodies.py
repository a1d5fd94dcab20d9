"""Reading a car's request body without letting it hurt the dispatcher.

Why this exists: every body comes from a car, and cars belong to strangers. A body must not be
able to crash a request with an uncaught error (a structure nested thousands of levels deep
overflows the parser's stack: ``RecursionError``), smuggle values canonical JSON cannot hash
(``NaN``, ``Infinity``), or cost more than a bounded amount of memory. So the limits below are
checked while the body is read and parsed, before anything else looks at it, and each breach
is a 4xx that names it (``BodyError``): 413 for a body too large, 400 for one too deep or not
JSON. ``server.Dispatcher`` reads bodies through ``parse``; large ones (``OFFLOAD_BYTES``) it
parses on a pool of processes of its own (``parse_offloaded``), off the event loop
(``docs/dispatch.md``, Limits).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from typing import Any, Generic, TypeVar, cast

import pydantic

from curbside_api import wire
from curbside_operator.dispatch import results

MAX_RESULT_BODY = 16 * 1024 * 1024
"""Largest complete body (a result and its envelope), in bytes."""
MAX_SMALL_BODY = 64 * 1024
"""Largest lease, renew or release body, in bytes: they hold a few short fields."""
MAX_DEPTH = 64
"""Deepest nesting of arrays and objects in a body (the envelope counts as one level)."""
OFFLOAD_BYTES = 64 * 1024
"""Bodies at least this large are parsed, checked and hashed on the parsing pool."""

R = TypeVar("R", bound=wire.Request)

# A JSON string, written so the regex never backtracks: quote, runs of plain characters and
# escapes, quote. What is left outside strings holds every bracket that counts for depth.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


class BodyError(Exception):
    """A body refused while reading it: ``status`` (400 or 413), ``field`` and the message."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(status, field, message)  # all three: it crosses from the parsing processes
        self.status, self.field, self.message = status, field, message

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Parsed(Generic[R]):
    """A validated request; for a complete, also its result's canonical JSON and that hash."""

    body: R
    canonical: bytes = b""
    digest: str = ""
    partial: bool = False
    """The body's result holds only its ``unit``: the rest is in ``canonical``."""


def too_deep(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text ``data`` nests arrays and objects deeper than ``limit``, found
    without parsing it (so without recursion): brackets inside strings do not count."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if len(brackets) <= 2 * limit:  # cannot reach limit + 1 levels, however they are arranged
        return False
    depths = itertools.accumulate(step - 1 for step in brackets.translate(_STEPS))
    return any(depth > limit for depth in depths)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse(data: bytes, model: type[R], *, limit: int) -> Parsed[R]:
    """The body ``data`` as a validated ``model``, within the limits; ``BodyError`` otherwise.

    A ``CompleteRequest``'s result is also written as canonical JSON and hashed here, so that
    heavy work happens where the parse happens (on the parsing pool, for a large body)."""
    if len(data) > limit:
        raise BodyError(413, "body", f"{len(data)} bytes: at most {limit} are accepted here")
    if too_deep(data):
        raise BodyError(400, "body", f"nested deeper than {MAX_DEPTH} levels of arrays and objects")
    try:
        raw = json.loads(data, parse_constant=_no_constants)
    except (ValueError, RecursionError) as error:  # RecursionError: only if the limit above were lifted
        raise BodyError(400, "body", f"not JSON: {error}") from error
    if not isinstance(raw, dict):
        raise BodyError(400, "body", "must be a JSON object")
    try:
        body = model.model_validate(raw)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise BodyError(400, field, first["msg"]) from error
    if not isinstance(body, wire.CompleteRequest):
        return Parsed(body)
    try:
        canonical = results.canonical_json(body.result)
    except (ValueError, RecursionError) as error:
        raise BodyError(400, "result", f"not JSON that can be hashed: {error}") from error
    return Parsed(cast(R, body), canonical, hashlib.sha256(canonical).hexdigest())


def parse_offloaded(data: bytes, model: type[R], limit: int) -> Parsed[R]:
    """``parse``, in a process of the parsing pool. A complete's answer carries the result as its
    canonical JSON and, of the parsed result, only its ``unit``: shipping the parsed result back
    would cost the dispatcher's process about what parsing it did."""
    parsed = parse(data, model, limit=limit)
    if not isinstance(parsed.body, wire.CompleteRequest):
        return parsed
    result = parsed.body.result
    light = {"unit": result["unit"]} if "unit" in result else {}
    body = parsed.body.model_copy(update={"result": light})
    return Parsed(cast(R, body), parsed.canonical, parsed.digest, partial=True)
