"""seti-spike-search: the generator is deterministic and honest, the detector finds every carrier.

Small spectrograms (512 channels, 64 steps) keep this fast; one test runs the example job's
own size (4096 x 256) once.
"""

from __future__ import annotations

import numpy as np
import pytest

from curbside_worker.workloads import seti, seti_detector

SMALL = seti.SetiParams(channels=512, time_steps=64, max_drift=8, signals_per_unit=3)


def detections(unit: seti.WorkUnit) -> list[seti.Signal]:
    p = unit.params
    hits = seti_detector.detect(unit.voltages, max_drift=p.max_drift, threshold=p.threshold_snr)
    return [s for item in range(len(hits)) for s in seti.hits_to_signals(hits[item], item=item)]


def test_a_unit_is_the_same_every_time_and_differs_from_its_neighbours() -> None:
    first = seti.generate_unit(seed=42, unit=3, items=2, params=SMALL)
    again = seti.generate_unit(seed=42, unit=3, items=2, params=SMALL)
    other = seti.generate_unit(seed=42, unit=4, items=2, params=SMALL)
    assert first.voltages.dtype == np.int8
    assert first.voltages.shape == (2, 64, 1024)
    assert first.voltages.tobytes() == again.voltages.tobytes()
    assert first.signals == again.signals
    assert first.voltages.tobytes() != other.voltages.tobytes()


def test_signals_go_round_robin_and_stay_apart_inside_the_band() -> None:
    params = seti.SetiParams(channels=512, time_steps=64, max_drift=8, signals_per_unit=6)
    for unit in range(10):
        generated = seti.generate_unit(seed=1, unit=unit, items=4, params=params)
        assert [s.item for s in generated.signals].count(0) == 2
        assert [s.item for s in generated.signals].count(3) == 1
        for item in range(4):
            lines = [s.channel + seti.drift_offsets(s.drift, 64) for s in generated.signals if s.item == item]
            for line in lines:
                assert line.min() >= 0
                assert line.max() < 512
            for i, a in enumerate(lines):
                for b in lines[i + 1 :]:
                    assert np.abs(a - b).min() > 2


def test_drift_offsets_run_from_zero_to_the_drift_and_round_half_up() -> None:
    assert list(seti.drift_offsets(0, 5)) == [0, 0, 0, 0, 0]
    assert list(seti.drift_offsets(2, 5)) == [0, 1, 1, 2, 2]  # 0, .5, 1, 1.5, 2
    assert list(seti.drift_offsets(-2, 5)) == [0, 0, -1, -1, -2]  # 0, -.5, -1, -1.5, -2
    for drift in (-31, -1, 7, 63):
        offsets = seti.drift_offsets(drift, 64)
        assert offsets[0] == 0
        assert offsets[-1] == drift
        assert np.all(np.abs(np.diff(offsets)) <= 1)


def test_parameters_parse_from_the_job_and_refuse_nonsense() -> None:
    example = {"channels": "4096", "timeSteps": "256", "signalsPerUnit": "2", "snrDb": "12"}
    params = seti.SetiParams.from_parameters(example)
    assert (params.channels, params.time_steps, params.signals_per_unit, params.snr_db) == (
        4096,
        256,
        2,
        12.0,
    )
    assert params.snr == pytest.approx(15.85, abs=0.01)
    with pytest.raises(ValueError, match="unknown parameter 'colour'"):
        seti.SetiParams.from_parameters({"colour": "red"})
    with pytest.raises(ValueError, match="'channels': not a number"):
        seti.SetiParams.from_parameters({"channels": "many"})
    with pytest.raises(ValueError, match="maxDrift"):
        seti.SetiParams.from_parameters({"timeSteps": "16", "maxDrift": "16"})
    with pytest.raises(ValueError, match="do not fit"):
        seti.generate_unit(seed=0, unit=0, items=1, params=seti.SetiParams(channels=64, max_drift=30))


def test_every_injected_signal_is_found_at_the_design_snr() -> None:
    truth, found = [], []
    for unit in range(6):
        generated = seti.generate_unit(seed=2024, unit=unit, items=4, params=SMALL)
        result = seti.match(generated.signals, detections(generated))
        truth += generated.signals
        found += result.found
        assert not result.missed, f"unit {unit}: missed {result.missed}"
        assert not result.false_positives, f"unit {unit}: false positives {result.false_positives}"
    assert len(found) == len(truth) == 18


def test_measured_snr_is_near_the_design_snr() -> None:
    measured = []
    for unit in range(4):
        generated = seti.generate_unit(seed=5, unit=unit, items=3, params=SMALL)
        measured += [d.snr for d in detections(generated)]
    assert np.median(measured) == pytest.approx(SMALL.snr, rel=0.25)


def test_a_strong_carrier_is_reported_once_not_as_a_fan_of_neighbouring_lines() -> None:
    loud = seti.SetiParams(channels=512, time_steps=64, max_drift=8, signals_per_unit=2, snr_db=25)
    generated = seti.generate_unit(seed=9, unit=0, items=2, params=loud)
    found = detections(generated)
    assert len(found) == 2
    assert not seti.match(generated.signals, found, tolerance=0).missed


def test_pure_noise_gives_no_candidates() -> None:
    quiet = seti.SetiParams(channels=512, time_steps=64, max_drift=8, signals_per_unit=0)
    generated = seti.generate_unit(seed=77, unit=0, items=8, params=quiet)
    assert detections(generated) == []


def test_the_example_jobs_full_size_unit() -> None:
    params = seti.SetiParams.from_parameters({"channels": "4096", "timeSteps": "256", "signalsPerUnit": "1"})
    generated = seti.generate_unit(seed=1420405752, unit=0, items=1, params=params)
    result = seti.match(generated.signals, detections(generated))
    assert len(result.found) == 1
    assert not result.false_positives


def test_match_pairs_within_tolerance_and_counts_the_rest() -> None:
    truth = [seti.Signal(0, 100, 3, 15.0), seti.Signal(1, 40, -2, 15.0)]
    detected = [seti.Signal(0, 101, 2, 14.0), seti.Signal(0, 300, 0, 9.0), seti.Signal(1, 45, -2, 12.0)]
    result = seti.match(truth, detected)
    assert result.found == (truth[0],)
    assert result.missed == (truth[1],)
    assert len(result.false_positives) == 2
