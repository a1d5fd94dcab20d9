"""The worker's token file as the kubelet rotates it: every request uses the file's current
token, a 401 makes the worker read the file again and repeat the request once, a file that is
missing for a moment keeps the last token, and a worker whose rotated token works never stops.
The dispatcher is the worker tests' fake over real HTTP; it accepts one token at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from curbside_worker import dispatcher as dp
from curbside_worker import runner
from curbside_worker.token import DispatcherToken, TokenUnavailable
from tests.support.dispatcher import FakeDispatcher, make_worker
from tests.support.fake_triton import FakeTriton, generated


def rotate(path: Path, token: str) -> None:
    """What the kubelet does: a new file swapped in atomically."""
    fresh = path.with_name(".new")
    fresh.write_text(token + "\n")
    os.replace(fresh, path)


def test_the_file_is_read_again_when_it_changes_and_only_then(tmp_path: Path) -> None:
    path = tmp_path / "token"
    rotate(path, "first")
    token = DispatcherToken(path=path)
    assert [token.current() for _ in range(3)] == ["first"] * 3
    assert token.reads == 1
    rotate(path, "second")
    assert token.current() == "second"
    path.unlink()  # between two kubelet writes: the last token stays in use
    assert token.current() == "second"
    assert not token.reload()


def test_no_token_file_at_all_is_a_pause_not_a_refusal(tmp_path: Path) -> None:
    with pytest.raises(TokenUnavailable, match="cannot read the token file"):
        DispatcherToken(path=tmp_path / "missing").current()
    client = dp.DispatcherClient(
        "http://127.0.0.1:9",
        namespace="n",
        name="j",
        car="c",
        owner="o",
        token=DispatcherToken(path=tmp_path / "x"),
    )
    with pytest.raises(dp.Unavailable):
        client.lease()
    client.close()


@pytest.fixture
def fake() -> Iterator[FakeDispatcher]:
    dispatcher = FakeDispatcher([generated(u) for u in range(3)], token="first").start()
    yield dispatcher
    dispatcher.stop()


def client_of(fake: FakeDispatcher, token: DispatcherToken) -> dp.DispatcherClient:
    return dp.DispatcherClient(fake.url, namespace="demo", name="job", car="car-1", owner="a", token=token)


def test_a_rotated_token_is_used_by_the_next_request(tmp_path: Path, fake: FakeDispatcher) -> None:
    path = tmp_path / "token"
    rotate(path, "first")
    client = client_of(fake, DispatcherToken(path=path))
    assert client.lease() is not None
    fake.token = "second"
    rotate(path, "second")
    assert client.lease() is not None
    assert fake.unauthorized == 0
    client.close()


def test_a_401_reads_the_file_again_and_repeats_the_request_once(
    tmp_path: Path, fake: FakeDispatcher
) -> None:
    path = tmp_path / "token"
    rotate(path, "old-1")
    token = DispatcherToken(path=path)
    client = client_of(fake, token)
    assert token.current() == "old-1"
    # A rotation the stat cannot see (same inode, size and mtime): only the 401 reveals it.
    stat = path.stat()
    path.write_text("first\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert client.lease() is not None
    assert fake.unauthorized == 1  # one refused try, then the repeat with the file's token
    fake.token = "never"
    with pytest.raises(dp.Refused):  # the file holds nothing newer: refused for good
        client.lease()
    client.close()


def test_a_worker_on_a_rotating_token_file_runs_to_the_end(tmp_path: Path, fake: FakeDispatcher) -> None:
    path = tmp_path / "token"
    rotate(path, "first")
    triton = FakeTriton()
    worker = make_worker(fake, triton, token="", token_file=str(path))
    original, rotations = triton.infer_batches, []

    def rotating(*args: object, **kwargs: object) -> object:
        rotations.append(fake.token)
        fake.token = f"t-{len(rotations)}"  # the dispatcher now accepts only the next one
        rotate(path, fake.token)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    triton.infer_batches = rotating  # type: ignore[method-assign]
    assert worker.run() == runner.EXIT_OK
    assert (fake.committed, len(rotations)) == (3, 3)
    assert fake.unauthorized == 0
