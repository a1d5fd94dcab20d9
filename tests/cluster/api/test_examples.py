"""Every manifest in examples/ is accepted by the real API server as written.

What the server stores (with its CRD defaults filled in) must parse to the same model as the
file does (with the model's defaults): that proves the defaults in the CRD and in the models
are the same, so the operator sees what the user sees in ``kubectl get -o yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from curbside_api import base
from curbside_api.v1alpha1 import inferencejob, vehiclenode
from tests.support import manifests as m
from tests.support import wait

EXAMPLES = sorted(m.EXAMPLES.glob("*.yaml"))
KINDS: dict[str, tuple[type[base.Resource], str]] = {
    "InferenceJob": (inferencejob.InferenceJob, "inferencejobs"),
    "VehicleNode": (vehiclenode.VehicleNode, "vehiclenodes"),
}


def _spec(model: base.Resource) -> dict[str, Any]:
    return dict(model.to_json()["spec"])


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_stored_as_the_model_reads_it(api: httpx.Client, namespace: str, path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    model, plural = KINDS[body["kind"]]
    namespaced = model.crd.scope == "Namespaced"
    name = body["metadata"]["name"] if namespaced else m.unique(body["metadata"]["name"])
    body["metadata"]["name"] = name
    ns = namespace if namespaced else None
    r = api.post(m.url(plural, namespace=ns), params={"fieldValidation": "Strict"}, json=body)
    try:
        assert r.status_code == 201, r.text
        assert not r.headers.get("Warning"), r.headers["Warning"]
        stored = model.from_body(r.json())
        assert _spec(stored) == _spec(model.from_body(body))
        assert stored.metadata.generation == 1
    finally:
        api.delete(m.url(plural, namespace=ns, name=name))


def test_kubectl_apply_of_the_examples_folder(api: httpx.Client, namespace: str, kubectl: m.Kubectl) -> None:
    cars = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in EXAMPLES if "vehiclenode" in p.name]
    # Cars are cluster-scoped and the test bed's cars may already have VehicleNodes (enrolled
    # by the operator or the simulator, with other VINs): the example replaces them, and they
    # are removed afterwards (the operator re-enrolls a car Node that has none).
    for car in cars:
        api.delete(m.url("vehiclenodes", name=car))
        gone = lambda c=car: api.get(m.url("vehiclenodes", name=c)).status_code == 404  # noqa: E731
        wait.until(gone, timeout=30, what=f"{car} deleted")
    ours = cars
    try:
        out = kubectl("apply", "-n", namespace, "-f", str(m.EXAMPLES)).stdout
        assert out.count("created") + out.count("configured") + out.count("unchanged") == len(EXAMPLES), out
        jobs = api.get(m.url("inferencejobs", namespace=namespace)).json()["items"]
        assert len(jobs) == sum(1 for p in EXAMPLES if "vehiclenode" not in p.name)
        for car in cars:
            assert api.get(m.url("vehiclenodes", name=car)).status_code == 200
    finally:
        for car in ours:
            api.delete(m.url("vehiclenodes", name=car))
