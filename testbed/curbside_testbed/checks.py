"""Check a finished job's published results against the known answers, in process.

Why this exists: "the fleet did the work" means nothing until the results are shown right: a
``seti-spike-search`` job hides carriers whose every position the seeded generator knows, and a
``minilm-embed`` job's embeddings must be what the model gives in this process. This module
reads a job's result folder (``FolderResultStore``'s layout: one ``<unit>.json`` per unit,
under ``<root>/<namespace>/<job>/``) and checks every unit:

- ``seti-spike-search``: each injected signal (``seti.generate_unit``) was found by the detector,
  same item, start channel and drift within ``--tolerance`` channels (``seti.match``); false
  positives are counted and shown, not failed on (the detector's own tests hold it to none);
- ``minilm-embed``: each item is the unit's item (index and text) and its embedding has cosine
  at least ``--min-cosine`` with the one computed here by ``minilm.MiniLM``.

Any unit with no result, a result of another model, or the wrong items fails the check.

``python -m curbside_testbed.checks --job-file job.yaml [--results DIR]`` prints one line
(verdict and counts) and exits 0 when every check passed, 1 when one failed, 2 on bad usage.
``DIR`` is the job's folder or the store's root (``<namespace>/<job>`` is looked for below it);
by default the job's own ``spec.output.uri``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from curbside_api.v1alpha1 import inferencejob
from curbside_worker.workloads import catalog, minilm, seti

Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]
MAX_SHOWN = 5
"""Problems named in the verdict line; the rest are counted."""


@dataclasses.dataclass
class Verdict:
    """What the check found for one job; ``line()`` is the one-line report."""

    job: str
    model: str
    units: int
    checked: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    counts: dict[str, int | float] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and self.checked == self.units

    def line(self) -> str:
        counts = ", ".join(f"{key} {_number(value)}" for key, value in self.counts.items())
        head = f"{'PASS' if self.ok else 'FAIL'} {self.job} ({self.model}): {self.checked}/{self.units} units"
        text = f"{head}, {counts}" if counts else head
        if self.problems:
            shown = "; ".join(self.problems[:MAX_SHOWN])
            more = len(self.problems) - MAX_SHOWN
            text += f" | {len(self.problems)} problem(s): {shown}" + (
                f"; and {more} more" if more > 0 else ""
            )
        return text


def _number(value: int | float) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def load_job(path: Path) -> inferencejob.InferenceJob:
    """The first InferenceJob in a YAML file (several documents allowed)."""
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, dict) and doc.get("kind") == "InferenceJob":
            return inferencejob.InferenceJob.from_body(doc)
    raise ValueError(f"{path}: no InferenceJob in it")


def results_folder(job: inferencejob.InferenceJob, given: Path | None) -> Path:
    """The folder holding ``<unit>.json``: ``given`` or its ``<namespace>/<job>``; by default
    the job's ``spec.output.uri``."""
    namespace, name = job.metadata.namespace or "default", job.metadata.name or ""
    if given is None:
        parsed = urllib.parse.urlparse(job.spec.output.uri)
        if parsed.scheme != "file":
            raise ValueError(f"spec.output.uri {job.spec.output.uri}: only file:// results can be checked")
        given = Path(urllib.request.url2pathname(parsed.path))
    below = given / namespace / name
    return below if below.is_dir() else given


def unit_inputs(spec: inferencejob.InferenceJobSpec) -> list[dict[str, Any]]:
    """Each unit's lease input, cut as the dispatcher cuts it (``dispatch.inputs``)."""
    source = spec.input
    if source.generated is not None:
        g = source.generated
        return [
            {"seed": g.seed, "unit": u, "itemsPerUnit": g.items_per_unit, "parameters": dict(g.parameters)}
            for u in range(g.units)
        ]
    if source.inline is not None:
        items, per = source.inline.items, source.inline.items_per_unit
        return [
            {"unit": u, "offset": o, "items": items[o : o + per]}
            for u, o in enumerate(range(0, len(items), per))
        ]
    assert source.dataset is not None
    uri, per = source.dataset.uri, source.dataset.items_per_unit
    total = _count_lines(uri)
    return [
        {"uri": uri, "unit": u, "offset": o, "count": min(per, total - o)}
        for u, o in enumerate(range(0, total, per))
    ]


def _count_lines(uri: str) -> int:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"dataset {uri}: only file:// datasets can be checked")
    data = Path(urllib.request.url2pathname(parsed.path)).read_bytes()
    return data.count(b"\n") + (bool(data) and not data.endswith(b"\n"))


def _results(folder: Path, units: int, verdict: Verdict) -> Iterator[tuple[int, dict[str, Any]]]:
    """(unit, result) for every unit whose result is there and well-formed; problems noted."""
    for unit in range(units):
        path = folder / f"{unit}.json"
        try:
            result = json.loads(path.read_bytes())
        except FileNotFoundError:
            verdict.problems.append(f"unit {unit}: no result")
            continue
        except ValueError as error:
            verdict.problems.append(f"unit {unit}: not JSON ({error})")
            continue
        if not isinstance(result, dict) or result.get("model") != verdict.model:
            model = result.get("model") if isinstance(result, dict) else None
            verdict.problems.append(f"unit {unit}: a result of model {model!r}, not {verdict.model}")
            continue
        if not isinstance(result.get("items"), list):
            verdict.problems.append(f"unit {unit}: no items")
            continue
        verdict.checked += 1
        yield unit, result


def check_seti(job: inferencejob.InferenceJob, folder: Path, *, tolerance: int = 1) -> Verdict:
    """Every injected signal found in every unit (see the module docstring)."""
    spec = job.spec
    generated = spec.input.generated
    if generated is None:
        raise ValueError(f"{seti.MODEL_NAME} jobs have generated input; this one does not")
    params = seti.SetiParams.from_parameters(generated.parameters)
    verdict = Verdict(job=job.metadata.name or "", model=seti.MODEL_NAME, units=generated.units)
    injected = found = false_positives = 0
    for unit, result in _results(folder, generated.units, verdict):
        truth = seti.generate_unit(
            seed=generated.seed, unit=unit, items=generated.items_per_unit, params=params
        )
        try:
            detected = [
                seti.Signal(
                    item=int(row["item"]),
                    channel=int(c["channel"]),
                    drift=int(c["drift"]),
                    snr=float(c["snr"]),
                )
                for row in result["items"]
                for c in row["candidates"]
            ]
        except (KeyError, TypeError, ValueError) as error:
            verdict.problems.append(f"unit {unit}: malformed candidates ({error!r})")
            continue
        matched = seti.match(truth.signals, detected, tolerance=tolerance)
        injected += len(truth.signals)
        found += len(matched.found)
        false_positives += len(matched.false_positives)
        for s in matched.missed:
            verdict.problems.append(
                f"unit {unit}: missed signal item {s.item} channel {s.channel} drift {s.drift}"
            )
    verdict.counts = {"signals found": found, "injected": injected, "false positives": false_positives}
    return verdict


def check_minilm(
    job: inferencejob.InferenceJob, folder: Path, *, embed: Embed, min_cosine: float = 0.999
) -> Verdict:
    """Every item's embedding equal to the in-process one (cosine at least ``min_cosine``)."""
    inputs = unit_inputs(job.spec)
    verdict = Verdict(job=job.metadata.name or "", model=minilm.MODEL_NAME, units=len(inputs))
    workload = catalog.MiniLMWorkload()
    texts: list[str] = []
    served: list[list[float]] = []
    for unit, result in _results(folder, len(inputs), verdict):
        expected = workload.prepare(inputs[unit]).labels  # (index in the job, text) per item
        got = [(row.get("item"), row.get("text")) for row in result["items"] if isinstance(row, dict)]
        if got != list(expected):
            verdict.problems.append(f"unit {unit}: items {got} are not the unit's items {list(expected)}")
            continue
        vectors = [row.get("embedding") for row in result["items"]]
        if not all(isinstance(v, list) and len(v) == minilm.DIMENSION for v in vectors):
            verdict.problems.append(f"unit {unit}: an embedding is not {minilm.DIMENSION} numbers")
            continue
        texts += [text for _, text in expected]
        served += vectors
    cosines = minilm.cosine(served, embed(texts)) if texts else np.zeros(0)
    for text, value in zip(texts, cosines, strict=True):
        if not value >= min_cosine:
            verdict.problems.append(f"cosine {value:.6f} < {min_cosine} for {text!r}")
    verdict.counts = {
        "embeddings": len(texts),
        f"cosine>={min_cosine}": int((cosines >= min_cosine).sum()),
        "min cosine": float(cosines.min()) if len(cosines) else 1.0,
    }
    return verdict


def check(
    job: inferencejob.InferenceJob,
    folder: Path,
    *,
    tolerance: int = 1,
    min_cosine: float = 0.999,
    embed: Embed | None = None,
) -> Verdict:
    """The check for the job's model; ``embed`` defaults to a fresh in-process ``MiniLM``."""
    model = job.spec.model.name
    if model == seti.MODEL_NAME:
        return check_seti(job, folder, tolerance=tolerance)
    if model == minilm.MODEL_NAME:
        return check_minilm(job, folder, embed=embed or minilm.MiniLM().embed, min_cosine=min_cosine)
    raise ValueError(f"no known answers for model {model!r} (known: {seti.MODEL_NAME}, {minilm.MODEL_NAME})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m curbside_testbed.checks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--job-file", type=Path, required=True, help="the job's YAML (as applied)")
    parser.add_argument("--results", type=Path, help="the job's result folder or the store's root")
    parser.add_argument("--tolerance", type=int, default=1, help="seti: channels of slack on start and drift")
    parser.add_argument("--min-cosine", type=float, default=0.999, help="minilm: least cosine per embedding")
    args = parser.parse_args(argv)
    try:
        job = load_job(args.job_file)
        folder = results_folder(job, args.results)
        verdict = check(job, folder, tolerance=args.tolerance, min_cosine=args.min_cosine)
    except (OSError, ValueError) as error:
        print(f"FAIL {args.job_file}: {error}")
        return 1
    print(f"{verdict.line()} [{folder}]")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
