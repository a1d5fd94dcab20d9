"""The seti-spike-search detector: FFT, de-drift sums, robust SNR, one candidate per carrier.

Why this exists: it is the model Triton serves for ``seti-spike-search`` (through PyTriton in
the test bed, through the Python backend on cars) and the in-process reference the benchmark
compares Triton against, so both paths run exactly this code.

The search, for a batch of spectrograms ``[B, T, 2C]`` of int8 voltages:

1. ``rfft`` per time step, power of channels ``0 .. C-1``.
2. De-drift: for every drift ``d`` in ``-maxDrift .. maxDrift`` and start channel ``c``, the
   power summed along the line ``c + offset_d(t)``. A line's offset is a staircase, so the
   sum is a few differences of the time-cumulative power (one per stair) rather than ``T``
   gathers: ``(|d| + 1) * C`` work per drift instead of ``T * C``.
3. SNR against the median and the MAD of all complete lines of that spectrogram (robust to
   the carriers themselves), threshold, then non-maximum suppression: a candidate whose line
   comes within one channel of a stronger kept candidate's line at any time step is the same
   carrier seen slightly off, and is dropped. The generator keeps carriers in separate bands,
   so distinct carriers never touch.

torch's own threads do the arithmetic; the Python loop runs only over kept candidates.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import numpy.typing as npt
import torch

from curbside_worker.workloads.seti import MAX_HITS, QUANTIZATION, drift_offsets

MAX_CANDIDATES = 4096
"""Strongest above-threshold lines considered per spectrogram before suppression."""
MAD_TO_SIGMA = 1.4826


@functools.lru_cache(maxsize=16)
def _stairs(time_steps: int, max_drift: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every drift line's stairs: (drift index, first step, step after the last, channel offset)."""
    drift_index, starts, ends, offsets = [], [], [], []
    for index, drift in enumerate(range(-max_drift, max_drift + 1)):
        steps = drift_offsets(drift, time_steps)
        change = np.flatnonzero(np.diff(steps)) + 1
        bounds = np.concatenate(([0], change, [time_steps]))
        for start, end in itertools.pairwise(bounds):
            drift_index.append(index)
            starts.append(int(start))
            ends.append(int(end))
            offsets.append(int(steps[start]))
    return (
        torch.tensor(drift_index),
        torch.tensor(starts),
        torch.tensor(ends),
        torch.tensor(offsets),
    )


@functools.lru_cache(maxsize=16)
def _paths(time_steps: int, max_drift: int) -> torch.Tensor:
    """``[drifts, T]`` offsets of every drift line, for the suppression test."""
    rows = [drift_offsets(d, time_steps) for d in range(-max_drift, max_drift + 1)]
    return torch.from_numpy(np.stack(rows))


def spectrogram(voltages: torch.Tensor, *, channels: int) -> torch.Tensor:
    """``[B, T, 2C]`` int8 voltages to ``[B, T, C]`` float power (noise mean about 1)."""
    samples = voltages.shape[-1]
    spectrum = torch.fft.rfft(voltages.to(torch.float32), dim=-1)[..., :channels]
    scale = 1.0 / (samples * QUANTIZATION**2)
    power: torch.Tensor = (spectrum.real.square() + spectrum.imag.square()) * scale
    return power


def dedrift(power: torch.Tensor, *, max_drift: int) -> torch.Tensor:
    """``[B, T, C]`` power to ``[B, D, C]`` line sums; lines that leave the band are NaN."""
    batch, steps, channels = power.shape
    drift_index, starts, ends, offsets = _stairs(steps, max_drift)
    width = channels + 2 * max_drift
    columns = torch.arange(channels)[None, :] + (offsets + max_drift)[:, None]  # [S, C]
    upper = (ends[:, None] * width + columns).flatten()
    lower = (starts[:, None] * width + columns).flatten()
    drifts = 2 * max_drift + 1
    sums = torch.zeros(batch, drifts, channels, dtype=torch.float32)
    cumulative = torch.zeros(steps + 1, width, dtype=torch.float32)
    for item in range(batch):
        torch.cumsum(power[item], dim=0, out=cumulative[1:, max_drift : max_drift + channels])
        flat = cumulative.flatten()
        stairs = (flat.index_select(0, upper) - flat.index_select(0, lower)).view(-1, channels)
        sums[item].index_add_(0, drift_index, stairs)
    drift_values = torch.arange(-max_drift, max_drift + 1)[:, None]
    start = torch.arange(channels)[None, :]
    complete = (start + drift_values.clamp(max=0) >= 0) & (start + drift_values.clamp(min=0) < channels)
    return sums.masked_fill(~complete, float("nan"))


def _snr(sums: torch.Tensor) -> torch.Tensor:
    """Per spectrogram: (sum - median) / (1.4826 MAD) over its complete lines."""
    flat = sums.flatten(1)
    median = flat.nanmedian(dim=1).values
    mad = (flat - median[:, None]).abs().nanmedian(dim=1).values
    sigma = (mad * MAD_TO_SIGMA).clamp(min=1e-12)
    return (sums - median[:, None, None]) / sigma[:, None, None]


def _suppress(
    snr: torch.Tensor, *, time_steps: int, max_drift: int, threshold: float
) -> list[tuple[int, int, float]]:
    """One spectrogram's ``[D, C]`` SNR to its kept candidates (channel, drift, snr), strongest first."""
    flat = torch.nan_to_num(snr, nan=-1.0).flatten()
    above = int((flat > threshold).sum())
    if above == 0:
        return []
    values, where = flat.topk(min(above, MAX_CANDIDATES))
    channels = snr.shape[1]
    drift_rows, starts = where // channels, where % channels
    lines = starts[:, None] + _paths(time_steps, max_drift)[drift_rows]  # [K, T]
    alive = torch.ones(len(values), dtype=torch.bool)
    kept: list[tuple[int, int, float]] = []
    for index in range(len(values)):
        if not alive[index]:
            continue
        kept.append((int(starts[index]), int(drift_rows[index]) - max_drift, float(values[index])))
        if len(kept) == MAX_HITS:
            break
        touching = ((lines - lines[index]).abs() <= 1).any(dim=1)
        alive &= ~touching
    return kept


def detect(voltages: npt.NDArray[np.int8], *, max_drift: int, threshold: float) -> npt.NDArray[np.float32]:
    """``[B, T, 2C]`` int8 voltages to ``[B, MAX_HITS, 3]`` rows (channel, drift, snr), strongest
    first; unused rows are ``(-1, 0, 0)``."""
    batch, steps, samples = voltages.shape
    channels = samples // 2
    with torch.inference_mode():
        power = spectrogram(torch.from_numpy(np.ascontiguousarray(voltages)), channels=channels)
        snr = _snr(dedrift(power, max_drift=max_drift))
        hits = np.zeros((batch, MAX_HITS, 3), dtype=np.float32)
        hits[:, :, 0] = -1
        for item in range(batch):
            kept = _suppress(snr[item], time_steps=steps, max_drift=max_drift, threshold=threshold)
            for row, (channel, drift, value) in enumerate(kept):
                hits[item, row] = (channel, drift, round(value, 2))
    return hits
