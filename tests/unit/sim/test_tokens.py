"""The simulator's kubelet for the workers' projected tokens, without a cluster.

What must hold: the token a pod asks for (its ``serviceAccountToken`` volume behind
``CURBSIDE_TOKEN_FILE``) is found, and a pod whose token file is not such a volume is refused
naming the variable; ``PodTokens`` requests the token for exactly that pod, writes it to a
private file, refreshes it at 80 % of its life and stops when the pod goes; a pool worker on a
projected token works with the token the request gave it. The TokenRequest against a real API
server is exercised by the cluster tests (tests/cluster/jobs/test_dispatcher_auth.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from curbside_sim import podspec, tokens, workers
from tests.support import wait
from tests.support.dispatcher import FakeDispatcher
from tests.support.fake_triton import FakeTriton, generated
from tests.support.sim_pool import CAR, Fleet, make_pool, pod

MOUNT = "/var/run/secrets/curbside.dev/dispatcher"


def projected(url: str = "http://d:8080", *, path: str = "token", uid: str = "uid-1") -> dict[str, Any]:
    """An inference pod whose worker reads a projected token, as the operator makes it."""
    body = pod({"CURBSIDE_TOKEN": "", "CURBSIDE_TOKEN_FILE": f"{MOUNT}/token"}, url=url, uid=uid)
    source = {"audience": "curbside-dispatcher", "expirationSeconds": 600, "path": path}
    body["spec"]["volumes"] = [{"name": "t", "projected": {"sources": [{"serviceAccountToken": source}]}}]
    body["spec"]["containers"][1]["volumeMounts"] = [{"name": "t", "mountPath": MOUNT, "readOnly": True}]
    return body


def test_the_token_a_pod_asks_for() -> None:
    assert podspec.projected_token(projected()) == podspec.ProjectedToken(
        namespace="demo",
        pod=f"job-{CAR}",
        uid="uid-1",
        service_account="default",
        audience="curbside-dispatcher",
        expiration_seconds=600,
    )
    assert podspec.projected_token(pod()) is None  # a fixed CURBSIDE_TOKEN: nothing to project


@pytest.mark.parametrize("change", ["path", "mount", "volume"])
def test_a_token_file_that_is_no_projected_token_is_refused(change: str) -> None:
    body = projected(path="other" if change == "path" else "token")
    if change == "mount":
        body["spec"]["containers"][1]["volumeMounts"] = []
    if change == "volume":
        body["spec"]["volumes"] = [{"name": "t", "secret": {"secretName": "s"}}]
    with pytest.raises(podspec.PodError, match=f"CURBSIDE_TOKEN_FILE {MOUNT}/token is not in a projected"):
        podspec.projected_token(body)


class Requests:
    """The TokenRequest API's side: a new token per request, valid ``lifetime`` seconds."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime, self.asked = lifetime, list[podspec.ProjectedToken]()
        self.fail = False

    def __call__(self, want: podspec.ProjectedToken) -> tuple[str, float]:
        self.asked.append(want)
        if self.fail:
            raise tokens.TokenError("the API server said no")
        return f"token-{len(self.asked)}", self.lifetime


def started(requests: Requests, folder: Path) -> tuple[tokens.PodTokens, Path]:
    """``PodTokens`` projecting the token of one pod; the token file's path."""
    pod_tokens = tokens.PodTokens(requests, folder)
    want = podspec.projected_token(projected())
    assert want is not None
    return pod_tokens, pod_tokens.start(want)


def test_tokens_are_written_refreshed_at_80_percent_and_dropped_with_the_pod(tmp_path: Path) -> None:
    requests = Requests(lifetime=0.5)
    pod_tokens, path = started(requests, tmp_path)
    assert path.read_text() == "token-1"
    assert path.stat().st_mode & 0o777 == 0o600
    wait.until(lambda: len(requests.asked) >= 3, timeout=10, what="two refreshes")  # every 0.4 s
    assert path.read_text().startswith("token-")
    assert {w.uid for w in requests.asked} == {"uid-1"}
    pod_tokens.stop("uid-1")
    assert not path.exists()
    asked = len(requests.asked)
    threading.Event().wait(1.0)  # more than two refresh periods: none comes
    assert len(requests.asked) == asked
    pod_tokens.close()


def test_a_failed_refresh_is_retried_and_the_old_token_stays(tmp_path: Path) -> None:
    requests = Requests(lifetime=0.2)
    pod_tokens, path = started(requests, tmp_path)
    requests.fail = True
    wait.until(lambda: len(requests.asked) >= 2, timeout=10, what="a refused refresh")
    assert path.read_text() == "token-1"
    requests.fail = False
    wait.until(lambda: path.read_text() != "token-1", timeout=10, what="the retried refresh")
    pod_tokens.close()


def test_a_pool_worker_uses_the_projected_token(tmp_path: Path) -> None:
    requests = Requests(lifetime=600)
    fake = FakeDispatcher([generated(u) for u in range(2)], token="token-1").start()
    try:
        pool, _ = make_pool(Fleet(), FakeTriton(), pod_tokens=tokens.PodTokens(requests, tmp_path))
        pool.pod_event("ADDED", projected(url=fake.url))
        fake.wait_for(lambda: fake.committed == 2, timeout=30)
        assert [w.pod for w in requests.asked] == [f"job-{CAR}"]
        assert fake.unauthorized == 0
        pool.close()
        assert list(tmp_path.iterdir()) == []  # the pod's token went with it
    finally:
        fake.stop()


def test_a_pool_without_pod_tokens_refuses_a_projected_pod(tmp_path: Path) -> None:
    pool, lines = make_pool(Fleet(), FakeTriton())
    pool.pod_event("ADDED", projected())
    assert pool.totals.refused == 1
    assert any("its token is projected" in line for line in lines)
    assert isinstance(pool, workers.WorkerPool)
