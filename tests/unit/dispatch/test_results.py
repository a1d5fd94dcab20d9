"""The folder result store: content-checked staging, publish only what the ledger committed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curbside_operator.dispatch import results


@pytest.fixture
def store(tmp_path: Path) -> results.FolderResultStore:
    return results.FolderResultStore(tmp_path, fsync=False)


def test_the_hash_is_of_canonical_json() -> None:
    assert results.canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'.encode()
    assert results.output_hash({"b": 1, "a": 2}) == results.output_hash(json.loads('{ "a": 2, "b": 1 }'))
    with pytest.raises(ValueError, match="Out of range float"):
        results.canonical_json({"x": float("nan")})


def test_staging_checks_the_hash_and_publishing_is_idempotent(store: results.FolderResultStore) -> None:
    good, forged = {"v": 1}, {"v": 2}
    digest = results.output_hash(good)
    with pytest.raises(results.ResultError, match="does not hash"):
        store.stage("ns", "job", 0, result=forged, output_hash=digest)
    ref = store.stage("ns", "job", 0, result=good, output_hash=digest)
    store.stage("ns", "job", 0, result=forged, output_hash=results.output_hash(forged))
    assert not store.published("ns", "job", 0)
    assert store.publish("ns", "job", 0, output_hash=digest) == ref == store.path("ns", "job", 0).as_uri()
    assert store.publish("ns", "job", 0, output_hash=digest) == ref
    assert store.read("ns", "job", 0) == good
    assert list((store.folder("ns", "job") / results.STAGING).iterdir()) == []
    with pytest.raises(results.ResultError, match="another result"):
        store.publish("ns", "job", 0, output_hash=results.output_hash(forged))


def test_nothing_to_publish_and_bad_names_are_refused(store: results.FolderResultStore) -> None:
    with pytest.raises(results.ResultError, match="no staged result"):
        store.publish("ns", "job", 1, output_hash="a" * 64)
    with pytest.raises(results.ResultError, match="no published result"):
        store.read("ns", "job", 1)
    with pytest.raises(results.ResultError, match="cannot name a folder"):
        store.path("..", "job", 0)
    with pytest.raises(results.ResultError, match="not a lowercase hex"):
        store.stage("ns", "job", 0, result={}, output_hash="../../etc")


def test_a_staged_file_that_rotted_is_not_published(store: results.FolderResultStore) -> None:
    digest = results.output_hash({"v": 1})
    store.stage("ns", "job", 0, result={"v": 1}, output_hash=digest)
    next((store.folder("ns", "job") / results.STAGING).iterdir()).write_text('{"v":9}')
    with pytest.raises(results.ResultError, match="damaged"):
        store.publish("ns", "job", 0, output_hash=digest)
    assert not store.published("ns", "job", 0)


def test_stores_are_found_from_file_uris(tmp_path: Path) -> None:
    assert results.store_for_uri(tmp_path.as_uri()).root == tmp_path
    with pytest.raises(results.UnsupportedOutput, match="only file://") as refused:
        results.store_for_uri("s3://bucket/results")
    assert refused.value.field == "spec.output.uri"


def test_published_can_check_the_content(store: results.FolderResultStore) -> None:
    digest = results.output_hash({"v": 1})
    assert not store.published("ns", "job", 0, output_hash=digest)
    store.path("ns", "job", 0).parent.mkdir(parents=True)
    store.path("ns", "job", 0).write_text('{"v":0}')  # a predecessor's result under the same job name
    assert store.published("ns", "job", 0)
    assert not store.published("ns", "job", 0, output_hash=digest)
    store.stage("ns", "job", 0, result={"v": 1}, output_hash=digest)
    store.publish("ns", "job", 0, output_hash=digest)
    assert store.published("ns", "job", 0, output_hash=digest)
