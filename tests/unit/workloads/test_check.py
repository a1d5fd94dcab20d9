"""The results checker passes right result folders and fails every kind of wrong one.

Results are made here as the worker makes them (``workloads`` + the served functions, in
process), small: 512-channel spectrograms, a handful of sentences. No Triton.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from curbside_api.v1alpha1 import inferencejob
from curbside_testbed import checks
from curbside_worker.workloads import catalog, minilm, specs

SMALL = {"channels": "512", "timeSteps": "64", "maxDrift": "8", "signalsPerUnit": "3"}
SENTENCES = [
    "A parked car is an idle computer.",
    "Work moves when a car drives away.",
    "Zzz.",
    "Results count.",
]


@pytest.fixture(scope="module")
def model() -> minilm.MiniLM:
    return minilm.MiniLM()


def job(name: str, model_name: str, source: dict[str, Any], root: Path) -> inferencejob.InferenceJob:
    return inferencejob.InferenceJob.from_body(
        {
            "apiVersion": "curbside.dev/v1alpha1",
            "kind": "InferenceJob",
            "metadata": {"name": name, "namespace": "demo"},
            "spec": {"model": {"name": model_name}, "input": source, "output": {"uri": root.as_uri()}},
        }
    )


def publish(root: Path, j: inferencejob.InferenceJob, unit: int, result: dict[str, Any]) -> Path:
    folder = root / "demo" / (j.metadata.name or "")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{unit}.json"
    path.write_bytes(catalog.canonical_json(result))
    return path


def seti_results(root: Path, units: int = 3) -> inferencejob.InferenceJob:
    j = job(
        "seti",
        "seti-spike-search",
        {"generated": {"seed": 5, "units": units, "itemsPerUnit": 2, "parameters": SMALL}},
        root,
    )
    w = catalog.SetiWorkload()
    for unit, spec in enumerate(checks.unit_inputs(j.spec)):
        prepared = w.prepare(spec)
        publish(root, j, unit, w.result(prepared, specs.seti_infer(**prepared.arrays)))
    return j


def minilm_results(root: Path, model: minilm.MiniLM) -> inferencejob.InferenceJob:
    j = job(
        "embed", "minilm-embed", {"inline": {"items": [*SENTENCES, "One more."], "itemsPerUnit": 2}}, root
    )
    w = catalog.MiniLMWorkload()
    for unit, spec in enumerate(checks.unit_inputs(j.spec)):
        prepared = w.prepare(spec)
        texts = [text for _, text in prepared.labels]
        publish(root, j, unit, w.result(prepared, {"EMBEDDING": model.embed(texts)}))
    return j


def edit(path: Path, change: Any) -> None:
    result = json.loads(path.read_text())
    change(result)
    path.write_text(json.dumps(result))


def test_seti_results_made_by_the_detector_pass(tmp_path: Path) -> None:
    j = seti_results(tmp_path)
    verdict = checks.check(j, checks.results_folder(j, tmp_path))
    assert verdict.ok, verdict.line()
    assert verdict.counts == {"signals found": 9, "injected": 9, "false positives": 0}
    assert verdict.line().startswith("PASS seti (seti-spike-search): 3/3 units, signals found 9, injected 9")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r["items"][0]["candidates"].clear(), "missed signal item 0"),
        (
            lambda r: r["items"][0]["candidates"][0].update(
                channel=r["items"][0]["candidates"][0]["channel"] + 3
            ),
            "missed",
        ),
        (
            lambda r: r["items"][1]["candidates"][0].update(
                drift=r["items"][1]["candidates"][0]["drift"] - 2
            ),
            "missed",
        ),
        (lambda r: r.update(model="minilm-embed"), "a result of model 'minilm-embed'"),
        (lambda r: r["items"][0]["candidates"][0].pop("channel"), "malformed candidates"),
    ],
)
def test_corrupted_seti_results_fail(tmp_path: Path, change: Any, problem: str) -> None:
    j = seti_results(tmp_path)
    edit(tmp_path / "demo" / "seti" / "1.json", change)
    verdict = checks.check(j, checks.results_folder(j, tmp_path))
    assert not verdict.ok
    assert verdict.line().startswith("FAIL seti")
    assert any(p.startswith("unit 1: ") and problem in p for p in verdict.problems), verdict.problems


def test_a_missing_unit_fails_and_a_false_positive_is_only_counted(tmp_path: Path) -> None:
    j = seti_results(tmp_path)
    (tmp_path / "demo" / "seti" / "2.json").unlink()
    edit(
        tmp_path / "demo" / "seti" / "0.json",
        lambda r: r["items"][1]["candidates"].append({"channel": 500, "drift": 0, "snr": 9.0}),
    )
    verdict = checks.check(j, checks.results_folder(j, tmp_path))
    assert verdict.problems == ["unit 2: no result"]
    assert (verdict.checked, verdict.counts["false positives"]) == (2, 1)


def test_minilm_results_equal_to_in_process_ones_pass(tmp_path: Path, model: minilm.MiniLM) -> None:
    j = minilm_results(tmp_path, model)
    verdict = checks.check(j, tmp_path / "demo" / "embed", embed=model.embed)
    assert verdict.ok, verdict.line()
    assert verdict.units == 3
    assert verdict.counts["embeddings"] == 5
    assert verdict.counts["min cosine"] > 0.9999


def test_minilm_tolerates_rounding_but_not_another_sentences_vector(
    tmp_path: Path, model: minilm.MiniLM
) -> None:
    j = minilm_results(tmp_path, model)
    rng = np.random.default_rng(0)
    noisy = lambda r: r["items"][0].update(  # noqa: E731
        embedding=[x + float(rng.normal(0, 1e-4)) for x in r["items"][0]["embedding"]]
    )
    edit(tmp_path / "demo" / "embed" / "0.json", noisy)
    assert checks.check(j, checks.results_folder(j, tmp_path), embed=model.embed).ok

    other = json.loads((tmp_path / "demo" / "embed" / "1.json").read_text())["items"][0]["embedding"]
    edit(tmp_path / "demo" / "embed" / "0.json", lambda r: r["items"][1].update(embedding=other))
    verdict = checks.check(j, checks.results_folder(j, tmp_path), embed=model.embed)
    assert not verdict.ok
    assert len(verdict.problems) == 1
    assert verdict.problems[0].startswith("cosine ")
    assert SENTENCES[1] in verdict.problems[0]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r["items"].reverse(), "are not the unit's items"),
        (lambda r: r["items"][0].update(text="Something else."), "are not the unit's items"),
        (lambda r: r["items"][0].update(item=7), "are not the unit's items"),
        (lambda r: r["items"][1]["embedding"].pop(), "not 384 numbers"),
    ],
)
def test_wrong_minilm_items_fail(tmp_path: Path, model: minilm.MiniLM, change: Any, problem: str) -> None:
    j = minilm_results(tmp_path, model)
    edit(tmp_path / "demo" / "embed" / "1.json", change)
    verdict = checks.check(j, checks.results_folder(j, tmp_path), embed=model.embed)
    assert not verdict.ok
    assert any(p.startswith("unit 1: ") and problem in p for p in verdict.problems), verdict.problems


def test_units_are_cut_as_the_dispatcher_cuts_them(tmp_path: Path) -> None:
    dataset = tmp_path / "lines.txt"
    dataset.write_text("a\nb\nc\nd\ne")  # no newline at the end: five items
    j = job("d", "minilm-embed", {"dataset": {"uri": dataset.as_uri(), "itemsPerUnit": 2}}, tmp_path)
    assert [(u["offset"], u["count"]) for u in checks.unit_inputs(j.spec)] == [(0, 2), (2, 2), (4, 1)]
    j = job("i", "minilm-embed", {"inline": {"items": SENTENCES[:3], "itemsPerUnit": 2}}, tmp_path)
    assert [u["items"] for u in checks.unit_inputs(j.spec)] == [SENTENCES[:2], SENTENCES[2:3]]


def test_the_command_line_reads_the_job_file_and_says_pass_or_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    j = seti_results(tmp_path / "store", units=2)
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(j.to_json()))
    assert checks.main(["--job-file", str(job_file)]) == 0  # results where spec.output.uri says
    assert capsys.readouterr().out.startswith("PASS seti (seti-spike-search): 2/2 units")
    assert (
        checks.main(["--job-file", str(job_file), "--results", str(tmp_path / "store" / "demo" / "seti")])
        == 0
    )
    capsys.readouterr()
    (tmp_path / "store" / "demo" / "seti" / "0.json").write_text("{")
    assert checks.main(["--job-file", str(job_file), "--results", str(tmp_path / "store")]) == 1
    assert "unit 0: not JSON" in capsys.readouterr().out
    (tmp_path / "other.yaml").write_text("kind: ConfigMap\n")
    assert checks.main(["--job-file", str(tmp_path / "other.yaml")]) == 1
    assert "no InferenceJob" in capsys.readouterr().out
