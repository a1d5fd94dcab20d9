"""The client side of each workload: a lease's input to Triton tensors, Triton's outputs to a result.

Why this exists: the worker knows leases, batches and commits; it must not know what a
spectrogram or a sentence is. Each workload here says, for its Triton model, how a unit's
``input`` (as the dispatcher hands it out) becomes named arrays with one row per item, and how
the model's outputs become the unit's result, a JSON object whose canonical form is hashed and
committed. The same tensor names and types are in ``specs.SPECS`` (what PyTriton serves in
``curbside_testbed.serve``) and in the model repository's ``config.pbtxt`` files; a test keeps
the three in step.

A lease's ``input`` is one of (the job's ``spec.input``, cut to one unit by the dispatcher):

- generated: ``{"seed", "unit", "itemsPerUnit", "parameters"?}``: the workload's generator;
- inline: ``{"items": [...], "offset"?}``: the unit's items themselves (``offset``: the first
  one's index in the job's list);
- dataset: ``{"uri", "offset", "count"}``: lines ``offset .. offset+count-1`` of a local
  ``file://`` object, one item per line.

Either bare or wrapped once (``{"generated": {...}}``). Only numpy here: the worker stays light.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from curbside_worker.workloads import minilm, seti

Json = dict[str, Any]
Arrays = dict[str, npt.NDArray[Any]]
EMBEDDING_DECIMALS = 6
SNR_DECIMALS = 1
"""Results are hashed, and replicas agree only on identical bytes: numbers are rounded so that
float noise between machines (other SIMD paths, thread counts) rarely reaches the hash. SNR to
0.1 sigma is plenty for a candidate list; embeddings keep 6 decimals (cosine is unaffected) and
so are only byte-identical between runs of the same build on the same kind of CPU."""


class BadInput(ValueError):
    """The lease's input cannot be turned into this workload's items (never worth a retry)."""


@dataclasses.dataclass(frozen=True)
class UnitInput:
    """One unit's items as named arrays, one row per item, plus what the result needs."""

    arrays: Arrays
    count: int
    labels: tuple[Any, ...] = ()


def canonical_json(result: Json) -> bytes:
    """The bytes that are hashed, exactly as the dispatcher computes them
    (``curbside_operator.dispatch.results.canonical_json``): sorted keys, no spaces, UTF-8
    (not ``\\u`` escapes), no NaN."""
    return json.dumps(
        result, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def output_hash(result: Json) -> str:
    return hashlib.sha256(canonical_json(result)).hexdigest()


def source_of(spec: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """("generated" | "inline" | "dataset", its fields) for a lease's input, bare or wrapped."""
    wrapped = [key for key in ("generated", "inline", "dataset") if isinstance(spec.get(key), Mapping)]
    if len(wrapped) == 1 and len(spec) == 1:
        return wrapped[0], spec[wrapped[0]]
    if "seed" in spec and "unit" in spec:
        return "generated", spec
    if "items" in spec:
        return "inline", spec
    if "uri" in spec:
        return "dataset", spec
    raise BadInput(f"input is none of generated, inline or dataset: keys {sorted(spec)}")


def _int(spec: Mapping[str, Any], key: str, *, default: int | None = None, low: int = 0) -> int:
    value: Any = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise BadInput(f"input.{key} must be an integer >= {low}, got {value!r}")
    return int(value)


def read_lines(uri: str, *, offset: int, count: int) -> list[str]:
    """Lines ``offset .. offset+count-1`` of a ``file://`` URI (no trailing newlines)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "file":
        raise BadInput(f"dataset URI scheme {parsed.scheme!r} is not supported here (only file://)")
    path = Path(urllib.request.url2pathname(parsed.path))
    lines: list[str] = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                if number >= offset + count:
                    break
                if number >= offset:
                    lines.append(line.rstrip("\r\n"))
    except OSError as error:
        raise BadInput(f"cannot read dataset {uri}: {error}") from error
    if len(lines) < count:
        raise BadInput(f"dataset {uri} has no lines {offset + len(lines)}..{offset + count - 1}")
    return lines


class Workload(abc.ABC):
    """One Triton model as the worker sees it."""

    name: str
    outputs: tuple[str, ...]

    @abc.abstractmethod
    def prepare(self, spec: Mapping[str, Any]) -> UnitInput:
        """The unit's items from a lease's ``input``; ``BadInput`` when it makes no sense."""

    @abc.abstractmethod
    def result(self, unit: UnitInput, outputs: Mapping[str, npt.NDArray[Any]]) -> Json:
        """The unit's result from the model's outputs (rows in item order)."""

    def batches(self, unit: UnitInput, *, batch_size: int) -> Iterator[Arrays]:
        """The unit's arrays cut into consecutive requests of at most ``batch_size`` rows."""
        for start in range(0, unit.count, batch_size):
            yield {name: array[start : start + batch_size] for name, array in unit.arrays.items()}


class SetiWorkload(Workload):
    name = seti.MODEL_NAME
    outputs = ("HITS",)

    def prepare(self, spec: Mapping[str, Any]) -> UnitInput:
        kind, fields = source_of(spec)
        if kind != "generated":
            raise BadInput(f"{self.name} takes generated input only, not {kind}")
        parameters = fields.get("parameters") or {}
        try:
            params = seti.SetiParams.from_parameters({str(k): str(v) for k, v in parameters.items()})
            items = _int(fields, "itemsPerUnit", default=1, low=1)
            generated = seti.generate_unit(
                seed=_int(fields, "seed"), unit=_int(fields, "unit"), items=items, params=params
            )
        except ValueError as error:
            raise BadInput(str(error)) from error
        rows = np.ones((items, 1))
        return UnitInput(
            arrays={
                "VOLTAGES": generated.voltages,
                "MAX_DRIFT": (rows * params.max_drift).astype(np.int32),
                "THRESHOLD": (rows * params.threshold_snr).astype(np.float32),
            },
            count=items,
            labels=tuple(range(items)),
        )

    def result(self, unit: UnitInput, outputs: Mapping[str, npt.NDArray[Any]]) -> Json:
        hits = outputs["HITS"]
        return {
            "model": self.name,
            "items": [
                {
                    "item": label,
                    "candidates": [
                        {"channel": s.channel, "drift": s.drift, "snr": round(s.snr, SNR_DECIMALS)}
                        for s in seti.hits_to_signals(hits[row], item=label)
                    ],
                }
                for row, label in enumerate(unit.labels)
            ],
        }


class MiniLMWorkload(Workload):
    name = minilm.MODEL_NAME
    outputs = ("EMBEDDING",)

    def prepare(self, spec: Mapping[str, Any]) -> UnitInput:
        kind, fields = source_of(spec)
        first = 0
        if kind == "generated":
            count = _int(fields, "itemsPerUnit", default=1, low=1)
            texts = minilm.generate_sentences(
                seed=_int(fields, "seed"), unit=_int(fields, "unit"), count=count
            )
        elif kind == "inline":
            first = _int(fields, "offset", default=0)
            texts = list(fields["items"]) if isinstance(fields["items"], Sequence) else []
            if not texts or not all(isinstance(text, str) for text in texts):
                raise BadInput("input.items must be a non-empty list of strings")
        else:
            first = _int(fields, "offset", default=0)
            count = _int(fields, "count", low=1)
            texts = read_lines(str(fields["uri"]), offset=first, count=count)
        array = np.array([[text.encode("utf-8")] for text in texts], dtype=np.object_)
        return UnitInput(
            arrays={"TEXT": array},
            count=len(texts),
            labels=tuple(zip(range(first, first + len(texts)), texts, strict=True)),
        )

    def result(self, unit: UnitInput, outputs: Mapping[str, npt.NDArray[Any]]) -> Json:
        vectors = np.asarray(outputs["EMBEDDING"], dtype=np.float32)
        return {
            "model": self.name,
            "items": [
                {
                    "item": index,
                    "text": text,
                    "embedding": [round(float(x), EMBEDDING_DECIMALS) for x in vectors[row]],
                }
                for row, (index, text) in enumerate(unit.labels)
            ],
        }


WORKLOADS: dict[str, Workload] = {w.name: w for w in (SetiWorkload(), MiniLMWorkload())}


def workload(name: str) -> Workload:
    """The workload for a Triton model name; ``KeyError`` names the known ones."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r} (known: {', '.join(sorted(WORKLOADS))})") from None
