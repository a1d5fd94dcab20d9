"""minilm-embed: deterministic sentences, and embeddings equal to sentence-transformers' own."""

from __future__ import annotations

import numpy as np
import pytest

from curbside_worker.workloads import minilm


@pytest.fixture(scope="module")
def model() -> minilm.MiniLM:
    return minilm.MiniLM()


def test_generated_sentences_depend_only_on_seed_and_unit() -> None:
    first = minilm.generate_sentences(seed=3, unit=1, count=20)
    assert first == minilm.generate_sentences(seed=3, unit=1, count=20)
    assert first != minilm.generate_sentences(seed=3, unit=2, count=20)
    assert first[:5] == minilm.generate_sentences(seed=3, unit=1, count=5)
    assert len(set(first)) > 15
    assert all(s[0].isupper() and s.endswith(".") for s in first)
    assert minilm.generate_sentences(seed=0, unit=0, count=0) == []
    with pytest.raises(ValueError, match="negative"):
        minilm.generate_sentences(seed=0, unit=0, count=-1)


def test_embeddings_are_unit_length_384_vectors(model: minilm.MiniLM) -> None:
    vectors = model.embed(["A parked car is an idle computer.", "x" * 5000, ""])
    assert vectors.shape == (3, minilm.DIMENSION)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert model.embed([]).shape == (0, minilm.DIMENSION)


def test_similar_sentences_are_closer_than_unrelated_ones(model: minilm.MiniLM) -> None:
    anchor, near, far = model.embed(
        [
            "A parked car is an idle computer.",
            "An idle car in the driveway can do computing work.",
            "Bananas are a yellow fruit rich in potassium.",
        ]
    )
    assert minilm.cosine(anchor, near)[0] > minilm.cosine(anchor, far)[0] + 0.2


def test_matches_sentence_transformers_on_the_same_files(model: minilm.MiniLM) -> None:
    from sentence_transformers import SentenceTransformer

    sentences = [
        *minilm.generate_sentences(seed=11, unit=0, count=6),
        "Short.",
        "Work moves when a car leaves.",
    ]
    reference = SentenceTransformer(str(minilm.model_dir()), device="cpu").encode(
        sentences, convert_to_numpy=True
    )
    assert minilm.cosine(model.embed(sentences), reference).min() >= 0.9999


def test_an_embedding_does_not_depend_on_its_batch_to_the_last_bit(model: minilm.MiniLM) -> None:
    sentences = minilm.generate_sentences(seed=4, unit=4, count=5)
    together = model.embed([*sentences, "a much longer sentence that pads everything else " * 8])[:5]
    alone = np.stack([model.embed([s])[0] for s in sentences])
    assert together.tobytes() == alone.tobytes()


def test_cosine_is_row_wise() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[2.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(minilm.cosine(a, b), [1.0, 0.0])
