"""Count API writes from the test bed's audit log, by user, verb and resource.

Why this exists: Curbside promises that an unchanged car costs one Lease renewal per period
and zero operator writes (DESIGN.md section 8). The API server's own audit log is the
impartial witness: every write request, who made it, what it touched. Tests take a
``Mark`` before a scenario and count what was written after it.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Write:
    """One write request as the API server recorded it."""

    user: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    timestamp: str
    body: object = field(default=None, compare=False, repr=False)
    """The request's object, where the audit policy records it (the operator's car writes)."""


@dataclass(frozen=True)
class Mark:
    """A position in the audit log (its size in bytes when taken)."""

    offset: int


def mark(log: Path) -> Mark:
    return Mark(log.stat().st_size if log.exists() else 0)


def writes_since(log: Path, since: Mark) -> list[Write]:
    """Every write recorded after ``since`` (the log must not have rotated in between)."""
    if not log.exists():
        return []
    out = []
    with log.open("rb") as f:
        f.seek(since.offset)
        for raw in f:
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a line still being written
            ref = event.get("objectRef") or {}
            out.append(
                Write(
                    user=event.get("user", {}).get("username", ""),
                    verb=event.get("verb", ""),
                    resource=ref.get("resource", ""),
                    subresource=ref.get("subresource", ""),
                    namespace=ref.get("namespace", ""),
                    name=ref.get("name", ""),
                    code=int((event.get("responseStatus") or {}).get("code", 0)),
                    timestamp=event.get("stageTimestamp", ""),
                    body=event.get("requestObject"),
                )
            )
    return out


def count(writes: list[Write]) -> collections.Counter[tuple[str, str, str]]:
    """Writes counted by (user, verb, resource[/subresource])."""
    return collections.Counter(
        (w.user, w.verb, f"{w.resource}/{w.subresource}" if w.subresource else w.resource) for w in writes
    )
