"""Where the agent's API credentials come from: a kubeconfig, or the in-cluster ServiceAccount.

Why this module exists: a car authenticates with its own client certificate (user
``curbside:car:<car>``, group ``curbside:cars``; docs/adr/0002), handed to it as a kubeconfig
at enrollment; an agent running as a pod uses its ServiceAccount token. Both end up as the
same three things httpx needs: the server URL, a TLS context (cluster CA, and the client
certificate when there is one) and, for tokens, an ``Authorization`` header. Only the parts
of the kubeconfig format a car's kubeconfig uses are read: the current (or named) context's
cluster ``server``, ``certificate-authority(-data)``, and its user's
``client-certificate(-data)``/``client-key(-data)``, ``token`` or ``tokenFile``. Anything
missing or unreadable is a ``CredentialsError`` naming the file and the key.

Projected ServiceAccount tokens rotate (about hourly), so a token file is re-read every
minute rather than once.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import ssl
import tempfile
import time
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0


class CredentialsError(ValueError):
    """The kubeconfig or the in-cluster files cannot be used; the message names what is wrong."""


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer``: a fixed token, or one from a file re-read every ``TOKEN_REREAD_SECONDS``."""

    def __init__(self, *, token: str | None = None, path: Path | None = None) -> None:
        self.path = path
        self._token = token or ""
        self._read_at = -TOKEN_REREAD_SECONDS

    def token(self) -> str:
        if self.path is not None and time.monotonic() - self._read_at >= TOKEN_REREAD_SECONDS:
            self._token = self.path.read_text().strip()
            self._read_at = time.monotonic()
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Server, CA, and either a client certificate/key pair or a bearer token (inline or a file)."""

    server: str
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None
    token_file: Path | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the server against the cluster CA and presents the client certificate, if any."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode() if self.ca_pem else None)
        if self.cert_pem is not None and self.key_pem is not None:
            # ssl loads a certificate chain only from files: write them privately, load, delete.
            with tempfile.TemporaryDirectory(prefix="curbside-agent-") as folder:
                cert, key = Path(folder) / "client.crt", Path(folder) / "client.key"
                cert.write_bytes(self.cert_pem)
                key.touch(mode=0o600)
                key.write_bytes(self.key_pem)
                context.load_cert_chain(cert, key)
        return context

    def auth(self) -> httpx.Auth | None:
        if self.token_file is None and self.token is None:
            return None
        return BearerAuth(token=self.token, path=self.token_file)

    @classmethod
    def from_kubeconfig(cls, path: Path, *, context: str | None = None) -> Credentials:
        """The credentials of ``context`` (default: the current context) in a kubeconfig file."""
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CredentialsError(f"{path}: cannot read kubeconfig: {exc}") from exc
        if not isinstance(config, Mapping):
            raise CredentialsError(f"{path}: not a kubeconfig (expected a mapping)")
        name = context or config.get("current-context")
        ctx = _named(config, "contexts", name, path)["context"]
        cluster = _named(config, "clusters", ctx.get("cluster"), path)["cluster"]
        user = _named(config, "users", ctx.get("user"), path).get("user") or {}
        if not cluster.get("server"):
            raise CredentialsError(f"{path}: cluster {ctx.get('cluster')!r} has no server")
        base = path.parent
        token_file = user.get("tokenFile")
        return cls(
            server=str(cluster["server"]),
            ca_pem=_pem(cluster, "certificate-authority", base, path),
            cert_pem=_pem(user, "client-certificate", base, path),
            key_pem=_pem(user, "client-key", base, path),
            token=user.get("token"),
            token_file=None if token_file is None else base / token_file,
        )

    @classmethod
    def in_cluster(cls, *, root: Path = SERVICE_ACCOUNT, env: Mapping[str, str] | None = None) -> Credentials:
        """The pod's ServiceAccount: token and CA under ``root``, server from the service env."""
        env = os.environ if env is None else env
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
        if not host or not (root / "token").exists():
            raise CredentialsError(f"not in a cluster: no KUBERNETES_SERVICE_HOST or no token under {root}")
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return cls(server=server, ca_pem=(root / "ca.crt").read_bytes(), token_file=root / "token")

    @classmethod
    def load(cls, kubeconfig: Path | None = None) -> Credentials:
        """From ``kubeconfig``, else ``$KUBECONFIG``, else the in-cluster ServiceAccount."""
        if kubeconfig is None and os.environ.get("KUBECONFIG"):
            kubeconfig = Path(os.environ["KUBECONFIG"].split(os.pathsep)[0])
        return cls.from_kubeconfig(kubeconfig) if kubeconfig is not None else cls.in_cluster()


def _named(config: Mapping[str, Any], section: str, name: object, path: Path) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    raise CredentialsError(f"{path}: no entry named {name!r} in {section}")


def _pem(entry: Mapping[str, Any], key: str, base: Path, path: Path) -> bytes | None:
    """``key-data`` (base64) or the file named by ``key`` (relative to the kubeconfig)."""
    inline = entry.get(f"{key}-data")
    if isinstance(inline, str) and inline:
        try:
            return base64.b64decode(inline, validate=True)
        except ValueError as exc:
            raise CredentialsError(f"{path}: {key}-data is not base64") from exc
    named = entry.get(key)
    if not isinstance(named, str) or not named:
        return None
    try:
        return (base / named).read_bytes()
    except OSError as exc:
        raise CredentialsError(f"{path}: {key} {named!r}: {exc}") from exc
