"""Cluster fixtures for the API tests: the CRDs in place for every test (the session's ``crds``
fixture, tests/cluster/conftest.py), and kubectl.

kubectl gets its own discovery cache per session, so it never shows a stale schema.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from curbside_testbed import bed, build
from tests.support.manifests import Kubectl


@pytest.fixture(autouse=True)
def _crds_applied(crds: list[dict[str, Any]]) -> None:
    """Every API test runs with the CRDs in place."""


@pytest.fixture(scope="session")
def kubectl(testbed: bed.TestBed, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """Run the test bed's own kubectl (same version as the API server) against it."""
    binary = build.toolchain().bin_dir / "kubectl"
    cache = tmp_path_factory.mktemp("kubectl-cache")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(binary), "--kubeconfig", str(testbed.kubeconfig), "--cache-dir", str(cache), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done

    return run
