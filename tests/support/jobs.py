"""InferenceJobs as the operator's job tests drive them: bodies, their pods, played workers.

Why this exists: the job, dispatcher-authentication, trust and observability tests all apply
jobs, wait for their pods and play a car's worker over the dispatcher's HTTP API with the token
its pod asks for (requested with the TokenRequest API, bound to the pod, as the car's kubelet
would project it), so every step (lease, late commit, fencing) is visible without a Triton
server.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from curbside_operator.dispatch.results import FolderResultStore, output_hash
from curbside_sim import podspec, tokens
from curbside_worker.workloads import seti
from tests.support import wait

IJ = "/apis/curbside.dev/v1alpha1"


def jobs_path(namespace: str) -> str:
    return f"{IJ}/namespaces/{namespace}/inferencejobs"


def job_body(name: str, *, units: int = 4, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "curbside.dev/v1alpha1",
        "kind": "InferenceJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "seti-spike-search"},
            "input": {"generated": {"units": units, "parameters": {"channels": "64", "timeSteps": "16"}}},
            "output": {"uri": "file:///tmp/curbside-test-results/" + name},
            "unitTimeoutSeconds": 120,
        },
    }
    body["spec"].update(spec)
    return body


def pods(api: httpx.Client, namespace: str, job: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": f"curbside.dev/job={job}"})
    assert r.status_code == 200, r.text
    return [p for p in r.json()["items"] if not p["metadata"].get("deletionTimestamp")]


def placed_pods(api: httpx.Client, namespace: str, job: str, count: int) -> list[dict[str, Any]]:
    """Wait until the job has exactly ``count`` live pods; return them."""
    found: list[dict[str, Any]] = wait.until(
        lambda: len(p := pods(api, namespace, job)) == count and p, timeout=30, what=f"{count} pods of {job}"
    )
    return found


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    worker = next(c for c in pod["spec"]["containers"] if c["name"] == "worker")
    return {e["name"]: e["value"] for e in worker["env"]}


def pod_token(api: httpx.Client, pod: dict[str, Any], *, audience: str | None = None) -> str:
    """The token ``pod``'s kubelet would project for its worker (TokenRequest, bound to the pod);
    with ``audience``, the same token for another audience."""
    want = podspec.projected_token(pod)
    assert want is not None, "the pod's worker reads no projected token"
    token, _ = tokens.request_over(api)(dataclasses.replace(want, audience=audience or want.audience))
    return token


class PlayedWorker:
    """A car's worker played over the dispatcher's HTTP API, with its pod's projected token."""

    def __init__(self, pod: dict[str, Any], api: httpx.Client) -> None:
        env = env_of(pod)
        self.car = env["CURBSIDE_CAR"]
        self.owner = env["CURBSIDE_OWNER"]
        job = f"{env['CURBSIDE_JOB_NAMESPACE']}/{env['CURBSIDE_JOB_NAME']}"
        base = f"{env['CURBSIDE_DISPATCHER_URL']}/v1/jobs/{job}"
        headers = {"Authorization": f"Bearer {pod_token(api, pod)}"}
        self.http = httpx.Client(base_url=base, headers=headers, timeout=10)

    def lease(self) -> httpx.Response:
        return self.http.post("/lease", json={"car": self.car, "owner": self.owner})

    def complete(self, unit: int, attempt: int, result: Any) -> httpx.Response:
        """Send ``result`` for the unit, named for it as a worker does (unless it names one)."""
        if isinstance(result, dict):
            result = {"unit": unit, **result}
        body = {"car": self.car, "attempt": attempt, "outputHash": output_hash(result), "result": result}
        return self.http.post(f"/units/{unit}/complete", json=body)


def missed_signals(
    store: FolderResultStore, namespace: str, job: str, *, units: int, seed: int, parameters: dict[str, str]
) -> int:
    """Injected signals of a generated ``seti-spike-search`` job its published results missed."""
    params = seti.SetiParams.from_parameters(parameters)
    missed = 0
    for unit in range(units):
        truth = seti.generate_unit(seed=seed, unit=unit, items=1, params=params).signals
        found = [
            seti.Signal(item=item["item"], channel=c["channel"], drift=c["drift"], snr=c["snr"])
            for item in store.read(namespace, job, unit)["items"]
            for c in item["candidates"]
        ]
        missed += len(seti.match(truth, found).missed)
    return missed
