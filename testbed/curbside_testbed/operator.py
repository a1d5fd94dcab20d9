"""The operator as a child process (``python -m curbside_operator``) against a test bed.

Why this exists: the cluster tests and the bench both run the real operator beside the test
bed, with its own kubeconfig (so the audit log tells its writes apart), its ledger in a work
folder, its dispatcher and metrics on free loopback ports, and its output in a log file. One
class starts it, says when it serves, reads its metrics and its CPU and memory, plays a crash
(``kill``) and stops it with everything it started (``procs.stop`` on its process group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from curbside_testbed import procs


class OperatorExited(RuntimeError):
    """The operator process is not running; the message ends with its log's tail."""


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """``python -m curbside_operator`` with ``kubeconfig``, its files in ``work``.

    ``grace`` sets ``CURBSIDE_CAR_LEASE_GRACE_SECONDS``; ``env`` adds or overrides settings
    (``CURBSIDE_*``). The ledger is ``work/ledger.sqlite3``, the log ``work/operator.log``
    (appended to across restarts). ``start`` then ``stop`` may be repeated: a restart keeps
    the ports, the ledger and the log.
    """

    def __init__(
        self,
        *,
        kubeconfig: Path,
        work: Path,
        grace: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.metrics_port, self.dispatcher_port = free_port(), free_port()
        self.dispatcher_url = f"http://127.0.0.1:{self.dispatcher_port}"
        self.log = work / "operator.log"
        settings = {
            "KUBECONFIG": str(kubeconfig),
            "CURBSIDE_LEDGER_PATH": str(work / "ledger.sqlite3"),
            "CURBSIDE_DISPATCHER_HOST": "127.0.0.1",
            "CURBSIDE_DISPATCHER_PORT": str(self.dispatcher_port),
            "CURBSIDE_DISPATCHER_URL": self.dispatcher_url,
            "CURBSIDE_METRICS_PORT": str(self.metrics_port),
        }
        if grace is not None:
            settings["CURBSIDE_CAR_LEASE_GRACE_SECONDS"] = str(grace)
        self.env: dict[str, str] = {**os.environ, **settings, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: float | None = None) -> None:
        """Start the process (leader of its own process group); with ``wait``, then wait up to
        that many seconds until it serves (``wait_ready``)."""
        with self.log.open("ab") as out:
            self.proc = procs.start(
                [sys.executable, "-m", "curbside_operator"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if wait is not None:
            self.wait_ready(timeout=wait)

    def tail(self, chars: int = 3000) -> str:
        """The end of the operator's log."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def check(self) -> None:
        """Raise ``OperatorExited`` unless the process runs."""
        if self.proc is None or self.proc.poll() is not None:
            raise OperatorExited(f"the operator is not running; its log ends:\n{self.tail()}")

    def serving(self) -> bool:
        """Whether both its metrics endpoint and its dispatcher answer (``OperatorExited`` if it
        exited)."""
        self.check()
        try:
            httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).raise_for_status()
            httpx.get(f"{self.dispatcher_url}/healthz", timeout=5)
        except httpx.HTTPError:
            return False
        return True

    def wait_ready(self, *, timeout: float = 60) -> None:
        """Wait until ``serving``; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.serving():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the operator did not serve its metrics and dispatcher within {timeout:.0f}s; "
                    f"its log ends:\n{self.tail()}"
                )
            time.sleep(0.2)

    def metric(self, name: str) -> float:
        """The value of an unlabelled metric (the first sample of a labelled one); 0 if absent."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def usage(self) -> tuple[float, float]:
        """(CPU seconds so far, RSS MiB) of the operator process, from /proc."""
        self.check()
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return cpu, rss / 1024

    def kill(self) -> None:
        """SIGKILL to its whole process group: no cleanup, exactly like a crash or an OOM kill."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, *, timeout: float = 30) -> int | None:
        """SIGTERM, SIGKILL after ``timeout`` s, then whatever is left in its group; its exit
        code (None if it was never started)."""
        if self.proc is None:
            return None
        return procs.stop(self.proc, timeout=timeout)
