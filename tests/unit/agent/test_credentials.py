"""Credentials from a kubeconfig (files or inline data, certificates or tokens) or the ServiceAccount."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from curbside_agent import credentials
from curbside_testbed import pki

C = credentials.Credentials


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    pki.create(folder, bed_name="unit")
    return folder


def _write(folder: Path, *, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "car", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "car",
    }
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_client_certificate_files_relative_to_the_kubeconfig(certs: Path) -> None:
    path = _write(
        certs,
        user={"client-certificate": "admin.crt", "client-key": "admin.key"},
        cluster={"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"},
    )
    creds = C.from_kubeconfig(path)
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.ca_pem == (certs / "ca.crt").read_bytes()
    assert creds.auth() is None
    context = creds.ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1


def test_inline_data_is_base64(certs: Path, tmp_path: Path) -> None:
    def b64(name: str) -> str:
        return base64.b64encode((certs / name).read_bytes()).decode()

    path = _write(
        tmp_path,
        user={"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
        cluster={"server": "https://10.0.0.1", "certificate-authority-data": b64("ca.crt")},
    )
    creds = C.from_kubeconfig(path)
    assert creds.cert_pem == (certs / "admin.crt").read_bytes()
    creds.ssl_context()  # the inline pair loads


def test_tokens_inline_and_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    inline = C.from_kubeconfig(_write(tmp_path, user={"token": "abc"})).auth()
    from_file = C.from_kubeconfig(_write(tmp_path, user={"tokenFile": "token"})).auth()
    assert inline is not None
    assert from_file is not None
    for auth, want in ((inline, "Bearer abc"), (from_file, "Bearer from-file")):
        request = next(auth.auth_flow(httpx.Request("GET", "https://api.test/")))
        assert request.headers["Authorization"] == want


@pytest.mark.parametrize(
    ("user", "cluster", "message"),
    [
        (
            {},
            {"certificate-authority": "missing.crt", "server": "https://x"},
            "certificate-authority 'missing.crt'",
        ),
        ({"client-key-data": "%%%"}, None, "client-key-data is not base64"),
        ({}, {"insecure": True}, "cluster 'c' has no server"),
    ],
    ids=["missing-ca-file", "bad-base64", "no-server"],
)
def test_unusable_kubeconfigs_say_why(
    tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(credentials.CredentialsError, match=message):
        C.from_kubeconfig(_write(tmp_path, user=user, cluster=cluster))


def test_unknown_context_and_unreadable_file(tmp_path: Path) -> None:
    path = _write(tmp_path, user={})
    with pytest.raises(credentials.CredentialsError, match="no entry named 'elsewhere' in contexts"):
        C.from_kubeconfig(path, context="elsewhere")
    with pytest.raises(credentials.CredentialsError, match="cannot read kubeconfig"):
        C.from_kubeconfig(tmp_path / "nope")


def test_in_cluster_service_account(tmp_path: Path, certs: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes((certs / "ca.crt").read_bytes())
    creds = C.in_cluster(
        root=tmp_path, env={"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    )
    assert creds.server == "https://[fd00::1]:443"
    assert creds.token_file == tmp_path / "token"
    with pytest.raises(credentials.CredentialsError, match="not in a cluster"):
        C.in_cluster(root=tmp_path, env={})


def test_load_prefers_the_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, user={"token": "t"})
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert C.load().server == "https://127.0.0.1:6443"
    monkeypatch.delenv("KUBECONFIG")
    assert C.load(path).token == "t"
