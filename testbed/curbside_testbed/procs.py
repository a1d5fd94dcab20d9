"""Child processes that lead their own process group, and how to stop them with everything they started.

Why this exists: the tooling starts servers (PyTriton's ``tritonserver``, the operator, the fleet
simulator) that start children of their own; a Python-backend stub, for one, can outlive
``tritonserver``'s exit timeout. Starting each child as the leader of a new process group lets
``stop`` end the whole group, so nothing is left running when a test, the demo or a benchmark ends.

- ``start(argv, ...)``: ``subprocess.Popen`` in a new session (so a new process group whose id
  is the child's pid).
- ``stop(process, timeout=...)``: SIGTERM to the child, SIGKILL if it is still running after
  ``timeout`` seconds, then SIGKILL to whatever is left in its group; the child's exit code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

File = int | IO[bytes] | None


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    stdin: File = None,
    stdout: File = None,
    stderr: File = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new process group (``env`` None: this environment)."""
    return subprocess.Popen(
        list(argv),
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes], *, timeout: float) -> int:
    """SIGTERM ``process``; SIGKILL after ``timeout`` seconds; then SIGKILL to anything left in
    its process group (``process`` must lead one, as ``start`` makes it). Its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # The group's id is the leader's pid, and that pid stays reserved while any member of
    # the group lives, so this reaches only what the child left behind.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.returncode
