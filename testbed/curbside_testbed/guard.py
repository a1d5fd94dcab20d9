"""Refuse to run tests against anything but a test bed.

Why this exists: cluster tests create and delete namespaces, Nodes and CRDs. Pointed at a
real cluster by a stray ``KUBECONFIG``, they would do damage. Like crate-operator's
conftest, we accept only a kubeconfig whose current context is a test bed's
(``curbside-testbed-<name>``) and whose server is on loopback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

CONTEXT_PREFIX = "curbside-testbed-"


class NotATestBedError(RuntimeError):
    """The kubeconfig does not point at a local Curbside test bed."""


def testbed_name(kubeconfig: str | Path) -> str:
    """The test bed name behind ``kubeconfig``; raises NotATestBedError for anything else."""
    try:
        config: dict[str, Any] = yaml.safe_load(Path(kubeconfig).read_text()) or {}
    except OSError as exc:
        raise NotATestBedError(f"cannot read kubeconfig {kubeconfig}: {exc}") from exc
    context = str(config.get("current-context") or "")
    if not context.startswith(CONTEXT_PREFIX):
        raise NotATestBedError(
            f"refusing kubeconfig {kubeconfig}: current context {context!r} is not a test bed's "
            f"(expected '{CONTEXT_PREFIX}<name>'); tests never run against a real cluster"
        )
    ctx = next((c["context"] for c in config.get("contexts", []) if c.get("name") == context), None)
    cluster_name = (ctx or {}).get("cluster")
    cluster = next((c["cluster"] for c in config.get("clusters", []) if c.get("name") == cluster_name), None)
    host = urlparse(str((cluster or {}).get("server", ""))).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise NotATestBedError(f"refusing kubeconfig {kubeconfig}: server host {host!r} is not loopback")
    return context.removeprefix(CONTEXT_PREFIX)
