"""Real Triton servers as session fixtures (a pytest plugin, registered in tests/conftest.py).

``triton``: PyTriton's tritonserver with both workloads, as the test bed runs it (the Triton
tests, the operator's job tests and the observability test share it). ``repository_server``:
``tritonserver`` on the model repository a car's pod loads (Python backend).

Starting one costs tens of seconds on a small machine (tritonserver, the Python-backend
proxies, MiniLM), so each is started once per session, on free loopback ports, with its log in
a file, and stopped (SIGTERM, then SIGKILL to its process group) at the end. A session that
asks for neither starts neither.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from curbside_testbed import serve
from tests.support.loopback import free_port


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


@pytest.fixture(scope="session")
def repository_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[serve.ServerProcess]:
    """``tritonserver`` on the model repository a car's pod loads (Python backend)."""
    server = serve.ServerProcess.repository(
        workdir=tmp_path_factory.mktemp("repository-triton"), grpc_port=free_port(), http_port=free_port()
    )
    server.start(timeout=240)
    yield server
    server.stop()
