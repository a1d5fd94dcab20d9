"""The simulator's lying cars lie as promised: their results differ from honest ones beyond any
sane tolerance (or replay an old one), reproducibly for a seed, and every lie is recorded."""

from __future__ import annotations

from typing import Any

import pytest

from curbside_operator.dispatch.results import within
from curbside_sim import cheats
from curbside_worker.workloads import catalog


def honest(unit: int) -> dict[str, Any]:
    candidate = {"channel": 10 + unit, "drift": -2, "snr": 12.5}
    return {"unit": unit, "items": [{"item": 0, "candidates": [candidate]}]}


def test_cheaters_are_drawn_in_the_asked_shares_and_reproducibly() -> None:
    cars = [f"car-{i}" for i in range(200)]
    shares = {"perturb": 0.05, "replay": 0.02, "random": 0.01}
    chosen = cheats.assign(cars, seed=3, shares=shares)
    modes = list(chosen.values())
    assert (modes.count("perturb"), modes.count("replay"), modes.count("random")) == (10, 4, 2)
    assert cheats.assign(cars, seed=3, shares=shares) == chosen
    assert cheats.assign(cars, seed=4, shares=shares) != chosen


def test_an_unknown_mode_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="flatter"):
        cheats.assign(["a"], seed=0, shares={"flatter": 0.5})


@pytest.mark.parametrize("mode", ["perturb", "random"])
def test_lies_differ_beyond_any_tolerance_and_are_recorded(mode: str) -> None:
    forged: set[tuple[int, str]] = set()
    liar = cheats.Cheater(mode, seed=1, forged=forged)
    for unit in range(20):
        lie = liar.tell(honest(unit), unit=unit)
        assert not within(lie, honest(unit), 0.01)
        assert (unit, catalog.output_hash(lie)) in forged
        assert lie["unit"] == unit  # the values lie, not the unit: quorum and probes must catch it
    assert len(forged) == 20


def test_a_perturber_with_nothing_to_move_still_lies() -> None:
    liar = cheats.Cheater("perturb", seed=1)
    assert liar.tell({"items": []}, unit=0) != {"items": []}


def test_a_replayer_sends_its_first_result_again_for_every_later_unit() -> None:
    forged: set[tuple[int, str]] = set()
    liar = cheats.Cheater("replay", seed=1, forged=forged)
    assert liar.tell(honest(0), unit=0) == honest(0)  # nothing to replay yet: honest, and kept
    assert forged == set()
    assert liar.tell(honest(5), unit=5) == honest(0)
    assert forged == {(5, catalog.output_hash(honest(0)))}  # unit 0's honest output is no lie for 0
