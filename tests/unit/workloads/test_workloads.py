"""The worker's side of each model: lease inputs to tensors, outputs to a canonical result."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from curbside_worker.workloads import catalog, minilm, seti

SETI_INPUT = {
    "seed": 1,
    "unit": 2,
    "itemsPerUnit": 3,
    "parameters": {"channels": "256", "timeSteps": "32", "maxDrift": "4", "thresholdSnr": "7.5"},
}


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ({"seed": 1, "unit": 0, "itemsPerUnit": 2, "parameters": {}}, "generated"),
        ({"generated": {"seed": 1, "unit": 0}}, "generated"),
        ({"unit": 3, "offset": 6, "items": ["a", "b"]}, "inline"),
        ({"uri": "file:///data.txt", "unit": 0, "offset": 0, "count": 5}, "dataset"),
        ({"dataset": {"uri": "file:///data.txt", "offset": 0, "count": 5}}, "dataset"),
    ],
)
def test_the_input_kind_is_recognised_bare_or_wrapped(spec: dict[str, object], kind: str) -> None:
    assert catalog.source_of(spec)[0] == kind


def test_an_unrecognisable_input_is_bad_input() -> None:
    with pytest.raises(catalog.BadInput, match="none of generated"):
        catalog.source_of({"colour": "red"})


def test_seti_inputs_are_the_generated_voltages_and_per_row_settings() -> None:
    workload = catalog.workload(seti.MODEL_NAME)
    unit = workload.prepare(SETI_INPUT)
    params = seti.SetiParams(channels=256, time_steps=32, max_drift=4, threshold_snr=7.5)
    expected = seti.generate_unit(seed=1, unit=2, items=3, params=params)
    assert unit.count == 3
    assert unit.arrays["VOLTAGES"].tobytes() == expected.voltages.tobytes()
    assert unit.arrays["MAX_DRIFT"].tolist() == [[4]] * 3
    assert unit.arrays["MAX_DRIFT"].dtype == np.int32
    assert unit.arrays["THRESHOLD"].tolist() == [[7.5]] * 3
    batches = list(workload.batches(unit, batch_size=2))
    assert [len(b["VOLTAGES"]) for b in batches] == [2, 1]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"items": ["x"]}, "generated input only"),
        ({"seed": 1, "unit": 0, "parameters": {"snrDb": "loud"}}, "not a number"),
        ({"seed": -1, "unit": 0}, "input.seed"),
        ({"seed": 1, "unit": 0, "itemsPerUnit": 0}, "input.itemsPerUnit"),
    ],
)
def test_seti_refuses_what_it_cannot_generate(spec: dict[str, object], message: str) -> None:
    with pytest.raises(catalog.BadInput, match=message):
        catalog.workload(seti.MODEL_NAME).prepare(spec)


def test_seti_result_lists_each_items_candidates_without_padding() -> None:
    workload = catalog.workload(seti.MODEL_NAME)
    unit = workload.prepare(SETI_INPUT)
    hits = np.zeros((3, seti.MAX_HITS, 3), dtype=np.float32)
    hits[:, :, 0] = -1
    hits[1, 0] = (17, -3, 15.4567)
    result = workload.result(unit, {"HITS": hits})
    assert result == {
        "model": "seti-spike-search",
        "items": [
            {"item": 0, "candidates": []},
            {"item": 1, "candidates": [{"channel": 17, "drift": -3, "snr": 15.5}]},
            {"item": 2, "candidates": []},
        ],
    }


def test_minilm_reads_generated_inline_and_dataset_items(tmp_path: Path) -> None:
    workload = catalog.workload(minilm.MODEL_NAME)
    generated = workload.prepare({"seed": 5, "unit": 1, "itemsPerUnit": 4})
    assert [text for _, text in generated.labels] == minilm.generate_sentences(seed=5, unit=1, count=4)
    inline = workload.prepare({"unit": 2, "offset": 4, "items": ["héllo", "world"]})
    assert inline.labels == ((4, "héllo"), (5, "world"))
    assert inline.arrays["TEXT"].tolist() == [["héllo".encode()], [b"world"]]
    data = tmp_path / "sentences.txt"
    data.write_text("".join(f"line {n}\n" for n in range(10)), encoding="utf-8")
    dataset = workload.prepare({"uri": data.as_uri(), "unit": 1, "offset": 3, "count": 4})
    assert dataset.labels == tuple((n, f"line {n}") for n in range(3, 7))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"uri": "s3://bucket/key", "offset": 0, "count": 1}, "only file://"),
        ({"uri": "file:///nonexistent/x.txt", "offset": 0, "count": 1}, "cannot read"),
        ({"items": []}, "non-empty list"),
        ({"items": [1, 2]}, "non-empty list"),
    ],
)
def test_minilm_refuses_unreadable_items(spec: dict[str, object], message: str) -> None:
    with pytest.raises(catalog.BadInput, match=message):
        catalog.workload(minilm.MODEL_NAME).prepare(spec)


def test_a_short_dataset_is_bad_input(tmp_path: Path) -> None:
    data = tmp_path / "short.txt"
    data.write_text("one\ntwo\n", encoding="utf-8")
    with pytest.raises(catalog.BadInput, match="no lines 2..4"):
        catalog.workload(minilm.MODEL_NAME).prepare({"uri": data.as_uri(), "offset": 1, "count": 4})


def test_minilm_result_rounds_embeddings_and_hashes_canonically() -> None:
    workload = catalog.workload(minilm.MODEL_NAME)
    unit = workload.prepare({"items": ["a"]})
    vector = np.full((1, minilm.DIMENSION), 1 / 3, dtype=np.float32)
    result = workload.result(unit, {"EMBEDDING": vector})
    assert result["items"][0]["embedding"][:2] == [0.333333, 0.333333]
    assert result["items"][0]["text"] == "a"
    canonical = catalog.canonical_json({"b": 1, "a": [1.5, "x"]})
    assert canonical == b'{"a":[1.5,"x"],"b":1}'
    assert catalog.output_hash({"b": 1, "a": [1.5, "x"]}) == hashlib.sha256(canonical).hexdigest()


def test_unknown_models_are_named() -> None:
    with pytest.raises(KeyError, match="known: minilm-embed, seti-spike-search"):
        catalog.workload("resnet")
