"""One real Triton server (PyTriton's tritonserver, both workloads) for every test here.

Starting it costs tens of seconds on a small machine (tritonserver, the Python-backend
proxies, MiniLM), so it is started once per session, on free loopback ports, with its log in a
file, and stopped (SIGTERM, then SIGKILL to its process group) at the end.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from curbside_agent.models import serve


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[serve.ServerProcess]:
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    server = serve.ServerProcess.pytriton(
        grpc_port=free_port(),
        http_port=free_port(),
        extra_args=["--exit-timeout=1", f"--log-file={log}", "--max-queue-delay-us=1000"],
    )
    server.start(timeout=240)
    yield server
    assert server.stop() is not None


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    return tmp_path
