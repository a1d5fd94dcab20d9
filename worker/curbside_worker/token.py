"""The worker's bearer token for the dispatcher: fixed, or a file that the kubelet rotates.

Why this exists: in an inference pod the worker's identity is a projected ServiceAccount token
(audience ``curbside-dispatcher``, bound to the pod and so to the car), and it lives about ten
minutes: the kubelet writes a fresh one into the mounted file at 80 % of its life, replacing
the file atomically. So the worker never holds the token it started with: every request looks
at the file (one ``stat``) and re-reads it when it changed; and when the dispatcher answers
401 (the token expired or the pod was re-bound) the file is read again at once, and the
request repeated once with the new token if there is one. A fixed token (``--token``) is for
people debugging a car by hand.

A file that cannot be read is ``TokenUnavailable`` (the kubelet may be about to write it): the
worker backs off and tries again, as for an unreachable dispatcher. A token read once is kept
while a later read fails.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator
from pathlib import Path

import httpx


class TokenUnavailable(Exception):
    """The token file cannot be read and no earlier token is known."""


class DispatcherToken(httpx.Auth):
    """``Authorization: Bearer`` with ``token``, or with the content of ``path`` as it changes."""

    def __init__(self, *, token: str | None = None, path: Path | str | None = None) -> None:
        if not token and path is None:
            raise ValueError("a token or a token file is needed")
        self.path = None if path is None else Path(path)
        self._token = token or ""
        self._seen: tuple[int, int, int] | None = None
        self._lock = threading.Lock()  # the worker's loop and its renewer thread share one client
        self.reads = 0

    def current(self) -> str:
        """The token now: the file is read again whenever it changed since the last read."""
        if self.path is None:
            return self._token
        with self._lock:
            try:
                stat = os.stat(self.path)  # follows the kubelet's ..data symlink to the new file
                seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
                if seen != self._seen:
                    self._read(seen)
            except (OSError, UnicodeDecodeError) as error:
                if not self._token:
                    raise TokenUnavailable(f"cannot read the token file {self.path}: {error}") from error
            return self._token

    def reload(self) -> bool:
        """Read the file again now (after a 401); True when it held a different token."""
        if self.path is None:
            return False
        before = self._token
        with self._lock:
            self._seen = None
        try:
            return self.current() != before
        except TokenUnavailable:
            return False

    def _read(self, seen: tuple[int, int, int]) -> None:
        assert self.path is not None
        text = self.path.read_text(encoding="utf-8").strip()
        self.reads += 1
        if text:  # a file caught empty mid-write keeps the previous token
            self._token, self._seen = text, seen

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.current()}"
        response = yield request
        if response.status_code == 401 and self.reload():
            request.headers["Authorization"] = f"Bearer {self.current()}"
            yield request
