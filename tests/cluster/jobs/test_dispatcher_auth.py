"""The dispatcher's authentication against the real API server: a worker token from car A
cannot lease or commit for car B.

The operator runs as its own process, its dispatcher checking every new token with a
TokenReview. The test plays the kubelets of two cars: it requests each pod's projected token
(TokenRequest, bound to the pod, audience ``curbside-dispatcher``) as the pod's volume asks.
Car A's token works for car A; used for car B it is refused with 403 for leasing, renewing,
committing and releasing, and car B's unit is untouched; a token for another audience, a token
of a pod that is gone, garbage and no token at all are 401; a ServiceAccount token that is not
bound to a pod is 403.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from curbside_operator.dispatch.results import output_hash
from curbside_testbed.operator import OperatorProcess
from tests.support import wait
from tests.support.figures import Figure
from tests.support.fleet import Cars, bring_up
from tests.support.jobs import job_body, jobs_path, placed_pods, pod_token

OPERATOR_ENV = {"CURBSIDE_STATUS_INTERVAL_SECONDS": "0.5"}
OTHER_AUDIENCE = "https://kubernetes.default.svc.cluster.local"


class Caller:
    """Requests to one job's dispatcher API with a chosen token."""

    def __init__(self, operator: OperatorProcess, namespace: str, job: str) -> None:
        self.base = f"{operator.dispatcher_url}/v1/jobs/{namespace}/{job}"

    def post(self, path: str, token: str | None, body: dict[str, Any]) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.post(self.base + path, json=body, headers=headers, timeout=30)


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_token_from_car_a_cannot_lease_or_commit_for_car_b(
    api: httpx.Client, namespace: str, operator: OperatorProcess, cars: Cars, figure: Figure
) -> None:
    a, b = bring_up(api, cars, ["car-00950", "car-00951"])
    r = api.post(jobs_path(namespace), json=job_body("auth", units=4, placement={"maxCars": 2}))
    assert r.status_code == 201, r.text
    placed = {p["spec"]["nodeName"]: p for p in placed_pods(api, namespace, "auth", 2)}
    token_a, token_b = pod_token(api, placed[a]), pod_token(api, placed[b])
    job = Caller(operator, namespace, "auth")

    started = time.monotonic()
    lease_a = ok(job.post("/lease", token_a, {"car": a, "owner": "x"}))  # reviewed by the API server
    first = time.monotonic() - started
    started = time.monotonic()
    ok(job.post(f"/units/{lease_a['unit']}/renew", token_a, {"car": a, "attempt": lease_a["attempt"]}))
    cached = time.monotonic() - started  # the review is cached
    lease_b = ok(job.post("/lease", token_b, {"car": b, "owner": "y"}))
    unit, attempt = lease_b["unit"], lease_b["attempt"]

    # Car A's valid token, acting for car B: refused, naming why, whatever it tries.
    result = {"forged": True}
    as_b = {
        "lease": ("/lease", {"car": b, "owner": "x"}),
        "renew": (f"/units/{unit}/renew", {"car": b, "attempt": attempt}),
        "complete": (
            f"/units/{unit}/complete",
            {"car": b, "attempt": attempt, "outputHash": output_hash(result), "result": result},
        ),
        "release": (f"/units/{unit}/release", {"car": b, "attempt": attempt}),
    }
    for what, (path, body) in as_b.items():
        refused = job.post(path, token_a, body)
        assert refused.status_code == 403, (what, refused.text)
        answer = refused.json()
        assert answer["error"] == "Forbidden", answer
        assert f"pod {namespace}/auth-{a} on car {a}: it may not act for car {b}" in answer["message"], answer

    # Car B's unit is untouched: still its live attempt, and B commits it.
    done = ok(
        job.post(
            f"/units/{unit}/complete",
            token_b,
            {
                "car": b,
                "attempt": attempt,
                "outputHash": output_hash({"ok": 1, "unit": unit}),
                "result": {"ok": 1, "unit": unit},
            },
        )
    )
    assert (done["committed"], done["duplicate"]) == (True, False)

    # No valid token for this dispatcher: 401.
    wrong_audience = pod_token(api, placed[a], audience=OTHER_AUDIENCE)
    for token in (wrong_audience, "garbage", "e30.e30.e30", token_a[:-8] + "AAAAAAAA", None):
        refused = job.post("/lease", token, {"car": a, "owner": "x"})
        assert refused.status_code == 401, (token and token[:20], refused.text)
        assert refused.json()["error"] == "Unauthorized"

    # A ServiceAccount token not bound to any pod: a valid identity, but no car's: 403.
    r = api.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/default/token",
        json={"spec": {"audiences": ["curbside-dispatcher"], "expirationSeconds": 600}},
    )
    assert r.status_code == 201, r.text
    refused = job.post("/lease", r.json()["status"]["token"], {"car": a, "owner": "x"})
    assert (refused.status_code, refused.json()["error"]) == (403, "Forbidden"), refused.text
    assert "not bound to a pod" in refused.json()["message"]

    # A fresh token of a pod that is gone (the operator makes a new pod, with a new uid): 401.
    orphan = pod_token(api, placed[a])
    r = api.delete(f"/api/v1/namespaces/{namespace}/pods/auth-{a}", params={"gracePeriodSeconds": 0})
    assert r.status_code == 200, r.text
    wait.until(
        lambda: api.get(f"/api/v1/namespaces/{namespace}/pods/auth-{a}").json().get("metadata", {}).get("uid")
        != placed[a]["metadata"]["uid"],
        timeout=30,
        what="the old pod gone",
    )
    refused = job.post("/lease", orphan, {"car": a, "owner": "x"})
    assert (refused.status_code, refused.json()["error"]) == (401, "Unauthorized"), refused.text
    figure(
        "dispatcher authentication",
        f"first request with a new token (TokenReview) {first * 1000:.0f} ms; "
        f"a request with a reviewed token {cached * 1000:.0f} ms",
    )
