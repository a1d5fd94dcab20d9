"""Cutting inputs into units: what each unit's input is, and which specs cannot be cut."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from curbside_api.v1alpha1 import inferencejob
from curbside_operator.dispatch import inputs


def source(spec_input: dict[str, Any], *, dataset_items: int | None = None) -> inputs.InputSource:
    return inputs.source_for(inferencejob.Input.model_validate(spec_input), dataset_items=dataset_items)


def test_generated_units_carry_the_seed_and_their_number() -> None:
    s = source({"generated": {"seed": 42, "units": 3, "itemsPerUnit": 8, "parameters": {"snrDb": "9"}}})
    assert s.units == 3
    assert s.unit_input(2) == {"seed": 42, "unit": 2, "itemsPerUnit": 8, "parameters": {"snrDb": "9"}}


def test_inline_items_are_sliced_and_the_last_unit_may_be_short() -> None:
    s = source({"inline": {"items": ["a", "b", "c", "d", "e"], "itemsPerUnit": 2}})
    assert s.units == 3
    assert [s.unit_input(u)["items"] for u in range(3)] == [["a", "b"], ["c", "d"], ["e"]]
    assert s.unit_input(2)["offset"] == 4


def test_dataset_units_are_line_ranges() -> None:
    s = source({"dataset": {"uri": "file:///data/x.txt", "itemsPerUnit": 100}}, dataset_items=250)
    assert s.units == 3
    assert s.unit_input(2) == {"uri": "file:///data/x.txt", "unit": 2, "offset": 200, "count": 50}
    with pytest.raises(IndexError):
        s.unit_input(3)


@pytest.mark.parametrize(
    ("make", "field", "words"),
    [
        (lambda: inputs.InlineSource((), 1), "spec.input.inline.items", "no items"),
        (lambda: inputs.GeneratedSource(1, 0, 1), "spec.input.generated.units", "no items"),
        (lambda: inputs.DatasetSource("file:///x", 0, 5), "spec.input.dataset.uri", "no items"),
        (lambda: inputs.DatasetSource("file:///x", 10**9, 1), "spec.input.dataset.itemsPerUnit", "more than"),
        (lambda: inputs.InlineSource(("a",), 0), "spec.input.inline.itemsPerUnit", "at least 1"),
        (
            lambda: source({"dataset": {"uri": "s3://b/k", "itemsPerUnit": 1}}),
            "spec.input.dataset.uri",
            "not known",
        ),
        (lambda: inputs.source_for(inferencejob.Input.model_construct()), "spec.input", "exactly one"),
    ],
)
def test_inputs_that_cannot_be_cut_name_the_field(make: Any, field: str, words: str) -> None:
    with pytest.raises(inputs.UnsplittableInput) as refused:
        make()
    assert refused.value.field == field
    assert words in refused.value.message


def test_dataset_items_are_counted_from_file_lines(tmp_path: Path) -> None:
    ended, open_ended, empty = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    ended.write_text("one\ntwo\nthree\n")
    open_ended.write_text("one\ntwo\nthree")
    empty.write_text("")
    assert [inputs.count_items(p.as_uri()) for p in (ended, open_ended, empty)] == [3, 3, 0]
    with pytest.raises(inputs.UnsplittableInput, match="cannot read"):
        inputs.count_items((tmp_path / "missing.txt").as_uri())
    with pytest.raises(inputs.UnsplittableInput, match="only file://"):
        inputs.count_items("https://example.com/items.txt")
