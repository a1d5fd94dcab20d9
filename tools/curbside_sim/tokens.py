"""The simulator plays the kubelet's projected ServiceAccount tokens for its cars' inference pods.

Why this module exists: a worker proves to the dispatcher which pod and car it is with a
projected token bound to its pod (the pod's ``serviceAccountToken`` volume source: audience,
lifetime, file). On a real car the kubelet requests that token and rotates it; kwok has no
kubelet, so for simulated cars this module does what the kubelet does:

- ``PodTokens.start``, given the token a pod asks for (``podspec.projected_token``), requests
  it with the TokenRequest API (``POST .../serviceaccounts/<sa>/token``, ``boundObjectRef`` =
  the pod by name and uid), so the token is bound to the pod and names its node exactly as a
  kubelet's would, and writes it to a private file (atomically: a new file replaces the old,
  like the kubelet's symlink swap);
- a thread requests a fresh token at 80 % of each token's life (the kubelet's rule), until
  ``stop``; the worker re-reads the file as it changes. A failed refresh is retried every
  second: the old token stays valid meanwhile.

The credentials are the simulator's own (it needs ``create`` on ``serviceaccounts/token``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

from curbside_agent import credentials
from curbside_sim.podspec import ProjectedToken

log = logging.getLogger(__name__)
REFRESH_AT = 0.8
"""Share of a token's life after which a new one is requested (the kubelet's rule)."""
RETRY_S = 1.0


class TokenError(Exception):
    """The pod's token cannot be requested; the message names the pod and why."""


Request = Callable[[ProjectedToken], tuple[str, float]]
"""Requests a token for the pod: ``(token, seconds it is valid)``; raises ``TokenError``."""


def request_over(client: httpx.Client) -> Request:
    """``Request`` through the TokenRequest API with ``client`` (the simulator's API credentials)."""

    def request(want: ProjectedToken) -> tuple[str, float]:
        path = f"/api/v1/namespaces/{want.namespace}/serviceaccounts/{want.service_account}/token"
        bound = {"apiVersion": "v1", "kind": "Pod", "name": want.pod, "uid": want.uid}
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [want.audience],
                "expirationSeconds": want.expiration_seconds,
                "boundObjectRef": bound,
            },
        }
        try:
            response = client.post(path, json=body)
        except httpx.HTTPError as error:
            raise TokenError(f"pod {want.namespace}/{want.pod}: TokenRequest failed: {error}") from error
        if response.status_code != 201:
            answer = f"{response.status_code}: {response.text[:300]}"
            raise TokenError(f"pod {want.namespace}/{want.pod}: TokenRequest answered {answer}")
        status = response.json()["status"]
        expires = datetime.fromisoformat(status["expirationTimestamp"].replace("Z", "+00:00"))
        return str(status["token"]), max(1.0, (expires - datetime.now(UTC)).total_seconds())

    return request


class PodTokens:
    """Token files for pods, requested with ``request`` and refreshed at ``REFRESH_AT`` of their life."""

    def __init__(
        self, request: Request, folder: Path, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.request, self.folder, self.clock = request, folder, clock
        self.requested = 0
        self._due: dict[str, tuple[float, ProjectedToken]] = {}
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._owned: tuple[httpx.Client, Path] | None = None

    @classmethod
    def from_credentials(cls, creds: credentials.Credentials) -> PodTokens:
        """Tokens requested with ``creds`` into a private temporary folder (``close`` removes it)."""
        client = httpx.Client(
            base_url=creds.server, verify=creds.ssl_context(), auth=creds.auth(), timeout=10
        )
        folder = Path(tempfile.mkdtemp(prefix="curbside-sim-tokens-"))
        tokens = cls(request_over(client), folder)
        tokens._owned = (client, folder)
        return tokens

    def start(self, want: ProjectedToken) -> Path:
        """Request the pod's token now, write its file and keep it fresh; the file's path."""
        path = self._mint(want)
        with self._wake:
            if self._closed:
                raise TokenError("the simulator is stopping")
            if self._thread is None:
                self._thread = threading.Thread(target=self._refresh, name="pod-tokens", daemon=True)
                self._thread.start()
            self._wake.notify()
        return path

    def stop(self, uid: str) -> None:
        """The pod is gone: no more refreshes, its file is removed."""
        with self._wake:  # under the lock: a refresh in flight cannot write the file back
            self._due.pop(uid, None)
            shutil.rmtree(self.folder / uid, ignore_errors=True)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._due.clear()
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._owned is not None:
            client, folder = self._owned
            client.close()
            shutil.rmtree(folder, ignore_errors=True)

    def _mint(self, want: ProjectedToken, *, refresh: bool = False) -> Path:
        token, lifetime = self.request(want)  # slow: outside the lock
        folder = self.folder / want.uid
        with self._wake:
            self.requested += 1
            if self._closed or (refresh and want.uid not in self._due):  # stopped meanwhile
                return folder / "token"
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fresh = folder / f".token-{self.requested}"
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(token)
            os.replace(fresh, folder / "token")
            self._due[want.uid] = (self.clock() + REFRESH_AT * lifetime, want)
        return folder / "token"

    def _refresh(self) -> None:
        while True:
            with self._wake:
                if self._closed:
                    return
                now = self.clock()
                ready = [want for at, want in self._due.values() if at <= now]
                if not ready:
                    self._wake.wait(min((at for at, _ in self._due.values()), default=now + 60) - now)
                    continue
            for want in ready:
                try:
                    self._mint(want, refresh=True)
                except (TokenError, OSError) as error:
                    log.warning("refreshing the token of pod %s/%s: %s", want.namespace, want.pod, error)
                    with self._wake:
                        if want.uid in self._due:
                            self._due[want.uid] = (self.clock() + RETRY_S, want)
