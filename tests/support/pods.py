"""Inference pods as the operator builds them, for the tests that read one.

Why this exists: the pod's contract is checked from two sides: ``reconcile/test_pods.py``
reads what the operator puts in it, the chart's tests check that the PodMonitor scrapes what it
declares. Both build the pod here, the same way.
"""

from __future__ import annotations

from typing import Any

from curbside_api.v1alpha1 import inferencejob as ij
from curbside_operator.reconcile import pods


def job(name: str = "seti", **model: Any) -> ij.InferenceJob:
    """A small generated-input job in namespace ``science``; ``model`` overrides ``spec.model``."""
    return ij.InferenceJob.from_body(
        {
            "apiVersion": "curbside.dev/v1alpha1",
            "kind": "InferenceJob",
            "metadata": {"name": name, "namespace": "science", "uid": "u-1"},
            "spec": {
                "model": {"name": "seti-spike-search", **model},
                "input": {"generated": {"units": 3}},
                "output": {"uri": "file:///r"},
            },
        }
    )


def pod_body(of: ij.InferenceJob | None = None, car: str = "car-00001") -> dict[str, Any]:
    """The pod the operator places for ``of`` (default: ``job()``) on ``car``."""
    return pods.pod_body(of or job(), car, owner="alice", dispatcher_url="http://d:8470", worker_image="w:1")
