"""The context guard refuses anything that is not a local test bed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from curbside_testbed import guard


def _kubeconfig(tmp_path: Path, *, context: str, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "current-context": context,
            }
        )
    )
    return path


@pytest.mark.parametrize(
    ("context", "server", "want"),
    [
        ("curbside-testbed-default", "https://127.0.0.1:6443", "default"),
        ("curbside-testbed-pytest-42", "https://localhost:1234", "pytest-42"),
    ],
    ids=["default-bed", "named-bed-on-localhost"],
)
def test_accepts_test_bed_contexts(tmp_path: Path, context: str, server: str, want: str) -> None:
    assert guard.testbed_name(_kubeconfig(tmp_path, context=context, server=server)) == want


@pytest.mark.parametrize(
    ("context", "server", "message"),
    [
        ("kind-curbside", "https://127.0.0.1:6443", "not a test bed's"),
        ("prod-eu", "https://10.0.0.1:6443", "not a test bed's"),
        ("curbside-testbed-evil", "https://k8s.example.com:6443", "not loopback"),
        ("", "https://127.0.0.1:6443", "not a test bed's"),
    ],
    ids=["kind", "production", "testbed-name-remote-server", "no-context"],
)
def test_refuses_everything_else(tmp_path: Path, context: str, server: str, message: str) -> None:
    with pytest.raises(guard.NotATestBedError, match=message):
        guard.testbed_name(_kubeconfig(tmp_path, context=context, server=server))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(guard.NotATestBedError, match="cannot read kubeconfig"):
        guard.testbed_name(tmp_path / "absent")
