"""Real Triton servers for every test here: PyTriton's tritonserver with both workloads (as the
test bed runs it) and, for the tests that need it, the cars' model repository.

Starting it costs tens of seconds on a small machine (tritonserver, the Python-backend
proxies, MiniLM), so it is started once per session, on free loopback ports, with its log in a
file, and stopped (SIGTERM, then SIGKILL to its process group) at the end.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from curbside_testbed import serve


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LoopbackApp:
    """An aiohttp application on a free loopback port, served by its own event loop in a thread
    (as the operator serves the dispatcher); ``close()`` stops it."""

    def __init__(self, app: web.Application) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        started = threading.Event()

        def run() -> None:
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="loopback-app", daemon=True)
        self.thread.start()
        assert started.wait(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


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


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    return tmp_path
