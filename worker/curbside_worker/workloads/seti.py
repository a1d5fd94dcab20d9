"""seti-spike-search: seeded synthetic radio-telescope work units and their torch detector.

Why this exists: the demo and the acceptance tests need a workload whose every answer is known
in advance, so "the fleet did the work correctly" is a check, not a hope (docs/workloads.md). A work
unit is what a SETI@home-style search gets from a telescope: raw 8-bit voltages, one block of
``2 * channels`` samples per time step. Buried in the noise (per-sample amplitude about 2 % of
the noise) are narrowband carriers whose frequency drifts linearly with time, as a transmitter
on a rotating planet would. The detector does what a de-Doppler search does: an FFT per time
step gives a power spectrogram, sums along every candidate drift line give an integrated
power, and lines whose power stands out by ``thresholdSnr`` robust standard deviations are
candidates; overlapping candidates collapse onto the strongest.

Everything in a unit follows from ``(seed, unit)`` (numpy's PCG64 through a ``SeedSequence``),
so two cars computing the same unit see the same bytes, and the generator returns the ground
truth (item, start channel, drift, SNR) the results are checked against.

Definitions the generator and the detector share (so the known answer is exact):

- A *drift* is the total number of channels the carrier moves during the observation; at
  time step ``t`` it is ``offset(t) = round(drift * t / (timeSteps - 1))`` (half up) channels
  away from its start channel. Each block holds a whole number of carrier cycles, so the phase
  is continuous and all of a step's power lands in one channel.
- The *SNR* is the integrated one: the excess of the line's summed power over the noise's
  mean, in units of the noise's standard deviation along the line (``snrDb`` in decibels).

The generator only needs numpy, because the worker (next to Triton, not inside it) builds the
inputs; torch is imported by the detector only (``curbside_worker.workloads.seti_detector``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

MODEL_NAME = "seti-spike-search"
QUANTIZATION = 16.0
"""int8 levels per noise standard deviation: the noise spans about ±8 sigma before clipping."""
MAX_HITS = 32
"""Candidates reported per spectrogram (rows of the model's HITS output)."""
GUARD_CHANNELS = 4
_PARAMETERS = {
    "channels": "channels",
    "timeSteps": "time_steps",
    "signalsPerUnit": "signals_per_unit",
    "snrDb": "snr_db",
    "maxDrift": "max_drift",
    "thresholdSnr": "threshold_snr",
}
"""The job's parameter names (camelCase, like the rest of the API) and their fields."""


@dataclasses.dataclass(frozen=True, slots=True)
class SetiParams:
    """The job's ``input.generated.parameters`` for this workload, parsed and checked."""

    channels: int = 4096
    time_steps: int = 256
    signals_per_unit: int = 2
    snr_db: float = 12.0
    max_drift: int = 32
    threshold_snr: float = 8.0

    def __post_init__(self) -> None:
        if not 64 <= self.channels <= 65_536:
            raise ValueError(f"channels must be 64..65536, got {self.channels}")
        if not 8 <= self.time_steps <= 4096:
            raise ValueError(f"timeSteps must be 8..4096, got {self.time_steps}")
        if not 0 <= self.max_drift < self.time_steps:
            raise ValueError(f"maxDrift must be 0..timeSteps-1, got {self.max_drift}")
        if not 0 <= self.signals_per_unit <= 256:
            raise ValueError(f"signalsPerUnit must be 0..256, got {self.signals_per_unit}")
        if not 0 < self.threshold_snr < 1000:
            raise ValueError(f"thresholdSnr must be in (0, 1000), got {self.threshold_snr}")
        if not -20.0 <= self.snr_db <= 40.0:
            raise ValueError(f"snrDb must be -20..40, got {self.snr_db}")

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, str]) -> SetiParams:
        """Parse the job's string parameters; unknown names and bad numbers raise ValueError."""
        values: dict[str, int | float] = {}
        for key, raw in parameters.items():
            field = _PARAMETERS.get(key)
            if field is None:
                raise ValueError(f"unknown parameter {key!r} (known: {', '.join(sorted(_PARAMETERS))})")
            try:
                values[field] = float(raw) if field in ("snr_db", "threshold_snr") else int(raw)
            except ValueError:
                raise ValueError(f"parameter {key!r}: not a number: {raw!r}") from None
        return cls(**values)  # type: ignore[arg-type]

    @property
    def band_width(self) -> int:
        """Channels reserved for one signal, so that no two signals' lines ever touch."""
        return 2 * self.max_drift + 2 * GUARD_CHANNELS + 1

    @property
    def snr(self) -> float:
        return float(10.0 ** (self.snr_db / 10.0))


@dataclasses.dataclass(frozen=True, slots=True)
class Signal:
    """One injected carrier (the ground truth) or one detected candidate."""

    item: int
    channel: int
    drift: int
    snr: float


@dataclasses.dataclass(frozen=True)
class WorkUnit:
    """A generated unit: ``voltages[item, t, sample]`` as int8, and what is hidden in them."""

    voltages: npt.NDArray[np.int8]
    signals: tuple[Signal, ...]
    params: SetiParams


def drift_offsets(drift: int, time_steps: int) -> npt.NDArray[np.int64]:
    """Channel offset of a drift line at each time step: ``round(drift * t / (T - 1))``, half up."""
    t = np.arange(time_steps, dtype=np.int64)
    span = max(time_steps - 1, 1)
    return (2 * drift * t + span) // (2 * span)


def carrier_amplitude(params: SetiParams) -> float:
    """Per-sample amplitude (in noise sigmas) that gives the integrated SNR ``params.snr``.

    With unit-variance noise a step's power in one channel, ``|X_k|^2 / N`` for ``N = 2C``
    samples, is exponential with mean and deviation 1; a carrier of amplitude ``A`` centred in
    the channel adds ``A^2 N / 4``. Summed over ``T`` steps: excess ``T A^2 N / 4`` against a
    deviation of ``sqrt(T)``.
    """
    samples = 2 * params.channels
    return math.sqrt(4.0 * params.snr / (samples * math.sqrt(params.time_steps)))


def _place(rng: np.random.Generator, *, params: SetiParams, count: int) -> list[tuple[int, int]]:
    """(start channel, drift) for ``count`` signals in distinct bands of one spectrogram."""
    bands = params.channels // params.band_width
    if count > bands:
        raise ValueError(
            f"{count} signals do not fit in one spectrogram of {params.channels} channels "
            f"(at most {bands} with maxDrift {params.max_drift})"
        )
    chosen = np.sort(rng.choice(bands, size=count, replace=False))
    placed = []
    for band in chosen:
        drift = int(rng.integers(-params.max_drift, params.max_drift + 1))
        low = int(band) * params.band_width + GUARD_CHANNELS + max(0, -drift)
        high = (int(band) + 1) * params.band_width - GUARD_CHANNELS - max(0, drift)
        placed.append((int(rng.integers(low, high)), drift))
    return placed


def generate_unit(*, seed: int, unit: int, items: int, params: SetiParams) -> WorkUnit:
    """The unit ``unit`` of the job seeded ``seed``: ``items`` spectrograms' worth of voltages.

    Signal ``k`` of the unit goes into item ``k % items``, so with fewer signals than items
    some items are pure noise (they check false positives).
    """
    if items < 1:
        raise ValueError(f"items must be at least 1, got {items}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, unit]))
    steps, samples = params.time_steps, 2 * params.channels
    amplitude = carrier_amplitude(params)
    n = np.arange(samples, dtype=np.float64)
    voltages = np.empty((items, steps, samples), dtype=np.int8)
    signals: list[Signal] = []
    per_item = [len(range(item, params.signals_per_unit, items)) for item in range(items)]
    for item in range(items):
        noise = rng.standard_normal((steps, samples), dtype=np.float32)
        for channel, drift in _place(rng, params=params, count=per_item[item]):
            phase = float(rng.uniform(0.0, 2.0 * math.pi))
            bins = channel + drift_offsets(drift, steps)
            carrier = amplitude * np.cos(2.0 * math.pi * np.outer(bins, n) / samples + phase)
            noise += carrier.astype(np.float32)
            signals.append(Signal(item=item, channel=channel, drift=drift, snr=params.snr))
        np.clip(np.rint(noise * QUANTIZATION), -127, 127, out=noise)
        voltages[item] = noise.astype(np.int8)
    return WorkUnit(voltages=voltages, signals=tuple(signals), params=params)


@dataclasses.dataclass(frozen=True)
class Match:
    """How a set of detections compares with the ground truth."""

    found: tuple[Signal, ...]
    missed: tuple[Signal, ...]
    false_positives: tuple[Signal, ...]


def match(truth: Sequence[Signal], detected: Sequence[Signal], *, tolerance: int = 1) -> Match:
    """Pair each injected signal with a detection in the same item whose start channel and
    drift are within ``tolerance`` channels; unpaired detections are false positives."""
    unused = list(detected)
    found, missed = [], []
    for signal in truth:
        hit = next(
            (
                d
                for d in unused
                if d.item == signal.item
                and abs(d.channel - signal.channel) <= tolerance
                and abs(d.drift - signal.drift) <= tolerance
            ),
            None,
        )
        if hit is None:
            missed.append(signal)
        else:
            unused.remove(hit)
            found.append(signal)
    return Match(found=tuple(found), missed=tuple(missed), false_positives=tuple(unused))


def hits_to_signals(hits: npt.NDArray[np.float32], *, item: int) -> list[Signal]:
    """Rows ``(channel, drift, snr)`` of one item's HITS output, padding rows (channel < 0) dropped."""
    return [
        Signal(item=item, channel=int(row[0]), drift=int(row[1]), snr=float(row[2]))
        for row in np.asarray(hits).reshape(-1, 3)
        if row[0] >= 0
    ]
