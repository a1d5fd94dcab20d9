"""Valid manifests to start from, URLs, and a way to change one field by its dotted path.

Why this exists: the invalid-manifest table, the example tests and the kubectl tests all
start from a valid object and change one thing; writing that once keeps each table row to
a line. ``Kubectl`` is the type of the API tests' ``kubectl`` fixture
(tests/cluster/api/conftest.py).
"""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
"""``kubectl(*args, check=True)``: the test bed's own kubectl against it."""
GROUP_VERSION = "/apis/curbside.dev/v1alpha1"
DELETE = object()
"""As a value in ``changed``: remove the field."""


def unique(prefix: str) -> str:
    """A name no other test (or earlier session on a reused test bed) uses."""
    return f"{prefix}-{os.urandom(3).hex()}"


def url(plural: str, *, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    path = GROUP_VERSION + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def job(name: str = "job") -> dict[str, Any]:
    """The smallest valid InferenceJob."""
    return {
        "apiVersion": "curbside.dev/v1alpha1",
        "kind": "InferenceJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "identity"},
            "input": {"generated": {"units": 10}},
            "output": {"uri": "file:///var/lib/curbside/results/t"},
        },
    }


def car(name: str = "car") -> dict[str, Any]:
    """The smallest valid VehicleNode."""
    return {
        "apiVersion": "curbside.dev/v1alpha1",
        "kind": "VehicleNode",
        "metadata": {"name": name},
        "spec": {
            "vehicle": {"vin": "5YJ3E1EA7KF317009", "model": "Model 3", "owner": "owner-t"},
            "hardware": {"accelerator": "hw4", "tops": 144, "memoryGiB": 16},
        },
    }


def changed(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` with each dotted path (``spec.redundancy.quorum``) set or deleted."""
    out = copy.deepcopy(body)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return out
