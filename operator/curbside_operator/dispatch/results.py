"""Where committed results go, and how a result is named by its content.

Why this exists: a result must land in the user's result store exactly when its unit commits,
and a crash between "the ledger committed" and "the file is there" must not lose it. So a
submission is written in two steps around the ledger's commit:

1. ``stage``: before asking the ledger, the result is written (tmp + fsync + rename) under
   ``.staging/<unit>-<hash>.json``. Staging is keyed by content, so a replay or an agreeing
   replica writes the same bytes to the same name.
2. The ledger decides. Only if the unit committed, ``publish`` renames that staged file to
   ``<unit>.json`` (atomic) and removes the unit's other staged files. Fenced or outvoted
   submissions never touch ``<unit>.json``; the dispatcher removes their staged copies when no
   submission waiting for a quorum needs them (``unstage``), and sweeps what a crash left
   behind when it registers the job (``staged`` lists the folder).

Staging is idempotent and may run in parallel; publishing runs one at a time with the ledger.
If the operator dies between the ledger's commit and ``publish``, the staged file is still
there (which is also why the rename needs no fsync), and ``publish`` again finishes the job:
at start-up for every committed unit whose file does not hold the committed hash (a job
re-created under the same name may find its predecessor's files), or when the worker replays.
``<unit>.json`` only ever receives the output its unit committed.

The hash is the SHA-256 of the result's canonical JSON (``canonical_json``): keys sorted, no
spaces, UTF-8, no NaN. Workers compute it the same way; the dispatcher checks it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Protocol

STAGING = ".staging"


class ResultError(Exception):
    """A result cannot be stored or published (the message says which and why)."""


class UnsupportedOutput(ValueError):
    """The job's ``spec.output.uri`` names a store this operator cannot write to."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def canonical_json(value: Any) -> bytes:
    """The one byte string a JSON value hashes as: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def output_hash(value: Any) -> str:
    """Lowercase hex SHA-256 of ``canonical_json(value)``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


class ResultStore(Protocol):
    """Where a job's committed results are kept, one object per unit."""

    def stage(
        self,
        namespace: str,
        name: str,
        unit: int,
        *,
        output_hash: str,
        result: Any = None,
        data: bytes | None = None,
    ) -> str:
        """Keep a submission (``result``, or its canonical JSON ``data``) until the ledger
        decides; returns the ref it will have once published."""
        ...

    def ref(self, namespace: str, name: str, unit: int) -> str:
        """The ref the unit's result has once published (what ``stage`` returns)."""
        ...

    def staged(self, namespace: str, name: str) -> list[tuple[int, str, int]]:
        """Every staged submission of the job: (unit, output hash, bytes)."""
        ...

    def is_staged(self, namespace: str, name: str, unit: int, *, output_hash: str) -> bool:
        """Whether a submission with ``output_hash`` is staged for the unit."""
        ...

    def unstage(self, namespace: str, name: str, unit: int, *, output_hash: str) -> None:
        """Drop a staged submission nobody needs any more (absent: nothing to do)."""
        ...

    def publish(self, namespace: str, name: str, unit: int, *, output_hash: str) -> str:
        """Make the staged submission with ``output_hash`` the unit's result (idempotent)."""
        ...

    def read(self, namespace: str, name: str, unit: int) -> Any:
        """The unit's published result; ``ResultError`` if there is none."""
        ...

    def load(self, namespace: str, name: str, unit: int, *, output_hash: str) -> Any:
        """A submission with ``output_hash``, staged or published; ``ResultError`` if gone."""
        ...

    def published(self, namespace: str, name: str, unit: int, *, output_hash: str | None = None) -> bool:
        """Whether the unit has a published result (with this hash, when one is given)."""
        ...

    def remove(self, namespace: str, name: str, unit: int, *, output_hash: str) -> bool:
        """Take the unit's published result out of the output if it is ``output_hash`` (a result
        the ledger revoked); whether it was there."""
        ...


class FolderResultStore:
    """Results as files: ``<root>/<namespace>/<job>/<unit>.json``."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync

    def folder(self, namespace: str, name: str) -> Path:
        for part in (namespace, name):
            if not part or part in (".", "..") or "/" in part or "\\" in part:
                raise ResultError(f"{part!r} cannot name a folder")
        return self.root / namespace / name

    def path(self, namespace: str, name: str, unit: int) -> Path:
        return self.folder(namespace, name) / f"{int(unit)}.json"

    def _staged(self, namespace: str, name: str, unit: int, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ResultError(f"{digest!r} is not a lowercase hex SHA-256")
        return self.folder(namespace, name) / STAGING / f"{int(unit)}-{digest}.json"

    def stage(
        self,
        namespace: str,
        name: str,
        unit: int,
        *,
        output_hash: str,
        result: Any = None,
        data: bytes | None = None,
    ) -> str:
        staged = self._staged(namespace, name, unit, output_hash)
        data = canonical_json(result) if data is None else data
        if hashlib.sha256(data).hexdigest() != output_hash:
            raise ResultError(f"unit {unit}: the result does not hash to {output_hash}")
        if not staged.exists():
            self._write(staged, data)
        return self.ref(namespace, name, unit)

    def ref(self, namespace: str, name: str, unit: int) -> str:
        return self.path(namespace, name, unit).as_uri()

    def staged(self, namespace: str, name: str) -> list[tuple[int, str, int]]:
        found = []
        for path in self.folder(namespace, name).joinpath(STAGING).glob("*-*.json"):
            unit, _, digest = path.stem.partition("-")
            if unit.isdigit() and len(digest) == 64:
                try:
                    found.append((int(unit), digest, path.stat().st_size))
                except FileNotFoundError:
                    continue
        return found

    def is_staged(self, namespace: str, name: str, unit: int, *, output_hash: str) -> bool:
        return self._staged(namespace, name, unit, output_hash).exists()

    def unstage(self, namespace: str, name: str, unit: int, *, output_hash: str) -> None:
        self._staged(namespace, name, unit, output_hash).unlink(missing_ok=True)

    def publish(self, namespace: str, name: str, unit: int, *, output_hash: str) -> str:
        final = self.path(namespace, name, unit)
        staged = self._staged(namespace, name, unit, output_hash)
        if staged.exists():
            if _digest(staged) != output_hash:
                raise ResultError(f"{staged} is damaged: its content does not hash to {output_hash}")
            os.replace(staged, final)  # no fsync: a rename lost to a power cut leaves the staged file
        elif not final.exists():
            raise ResultError(f"unit {unit}: no staged result with hash {output_hash} to publish")
        elif _digest(final) != output_hash:
            raise ResultError(f"{final} holds another result than {output_hash}")
        for other in final.parent.joinpath(STAGING).glob(f"{int(unit)}-*.json"):
            other.unlink(missing_ok=True)
        return final.as_uri()

    def read(self, namespace: str, name: str, unit: int) -> Any:
        try:
            return json.loads(self.path(namespace, name, unit).read_bytes())
        except FileNotFoundError as error:
            raise ResultError(f"unit {unit} of {namespace}/{name} has no published result") from error

    def load(self, namespace: str, name: str, unit: int, *, output_hash: str) -> Any:
        for path in (self._staged(namespace, name, unit, output_hash), self.path(namespace, name, unit)):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            if hashlib.sha256(data).hexdigest() == output_hash:
                return json.loads(data)
        raise ResultError(f"unit {unit} of {namespace}/{name} has no result with hash {output_hash}")

    def remove(self, namespace: str, name: str, unit: int, *, output_hash: str) -> bool:
        path = self.path(namespace, name, unit)
        if not self.published(namespace, name, unit, output_hash=output_hash):
            return False
        path.unlink(missing_ok=True)
        self._sync_dir(path.parent)
        return True

    def published(self, namespace: str, name: str, unit: int, *, output_hash: str | None = None) -> bool:
        path = self.path(namespace, name, unit)
        if output_hash is None:
            return path.exists()
        try:
            return _digest(path) == output_hash
        except FileNotFoundError:
            return False

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # stagers may run in parallel
        with open(tmp, "wb") as out:
            out.write(data)
            if self.fsync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
        self._sync_dir(path.parent)

    def _sync_dir(self, folder: Path) -> None:
        if self.fsync:
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def within(a: Any, b: Any, tolerance: float) -> bool:
    """Whether two JSON values are equal, numbers allowed to differ by at most ``tolerance``
    (absolute): same keys, same list lengths, same strings and booleans.

    Never raises: both values may come from cars, so a number no float can hold (``10**400``),
    NaN, an infinity or a structure too deep to walk is a mismatch, not an error (one such
    result must not make every honest result for its unit fail)."""
    try:
        return _within(a, b, tolerance)
    except (OverflowError, RecursionError, TypeError, ValueError):
        return False


def within_stored(
    store: ResultStore, namespace: str, name: str, unit: int, output_hash: str, result: Any, tolerance: float
) -> bool:
    """``within(result, the stored submission output_hash)``; ``result`` may be canonical JSON
    (bytes). False when the store no longer holds that submission, or it cannot be read: a
    result that is gone vouches for nothing. A module-level function, so a process pool can
    run it."""
    try:
        other = store.load(namespace, name, unit, output_hash=output_hash)
        ours = json.loads(result) if isinstance(result, bytes) else result
    except (ResultError, ValueError, RecursionError):
        return False
    return within(ours, other, tolerance)


def _within(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return _close(a, b, tolerance)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_within(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_within(x, y, tolerance) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


def _close(a: int | float, b: int | float, tolerance: float) -> bool:
    """``|a - b| <= tolerance`` without overflow: two ints subtract exactly (Python ints have
    no limit); otherwise both must be finite floats."""
    if isinstance(a, int) and isinstance(b, int):
        return abs(a - b) <= tolerance
    try:
        x, y = float(a), float(b)
    except OverflowError:
        return False
    if not (math.isfinite(x) and math.isfinite(y)):
        return False
    return abs(x - y) <= tolerance


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_for_uri(uri: str, *, field: str = "spec.output.uri") -> FolderResultStore:
    """The store behind a job's ``spec.output.uri``; only ``file://`` folders so far."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise UnsupportedOutput(field, f"cannot write results to {uri}: only file:// folders are supported")
    return FolderResultStore(urllib.request.url2pathname(parsed.path))
