"""The bench's baseline really is Kubernetes moving a pod off a car that stopped heart-beating.

``curbside bench`` makes a baseline car depart by taking over its node Lease and marking the
node Terminated, so that kwok stops heart-beating it (curbside_bench.baseline). If
kwok ever kept the node alive, every baseline figure would be wrong; this checks, on the
real control plane, that the node goes Unknown, gets the unreachable NoExecute taint, and
the Deployment's pod is replaced on the other car by the default controllers. It uses the
session's two last cars (no other test touches them) and takes about 70 s (the
node-monitor grace period).
"""

from __future__ import annotations

import time

import httpx

from curbside_bench import baseline, kit
from curbside_testbed import bed
from tests.support import wait
from tests.support.fleet import SILENCEABLE


def test_a_silenced_car_goes_unknown_and_kubernetes_moves_its_pod(
    testbed: bed.TestBed, api: httpx.Client
) -> None:
    cars = list(SILENCEABLE)
    for car in cars:
        r = api.patch(
            f"/api/v1/nodes/{car}",
            json={"metadata": {"labels": {kit.GROUP_LABEL: "cluster-test"}}},
            headers=kit.MERGE,
        )
        assert r.status_code == 200, r.text
    api.post("/api/v1/namespaces", json={"metadata": {"name": baseline.NAMESPACE}})
    body = baseline.deployment("cluster-test", "cluster-test", 1, shortest=True)
    r = api.post(f"/apis/apps/v1/namespaces/{baseline.NAMESPACE}/deployments", json=body)
    assert r.status_code == 201, r.text
    try:
        pod = wait.until(
            lambda: next(
                (
                    p
                    for p in kit.live_pods(api, baseline.NAMESPACE, "app=cluster-test")
                    if p["spec"].get("nodeName")
                ),
                None,
            ),
            timeout=60,
            what="the baseline pod bound",
        )
        assert pod is not None
        tolerations = {(t["key"], t.get("tolerationSeconds")) for t in pod["spec"]["tolerations"]}
        assert ("node.kubernetes.io/unreachable", 0) in tolerations
        gone = pod["spec"]["nodeName"]
        silenced = baseline.silence(api, gone)

        def tainted() -> bool:
            node = api.get(f"/api/v1/nodes/{gone}").json()
            taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
            return ("node.kubernetes.io/unreachable", "NoExecute") in taints

        wait.until(tainted, timeout=150, what=f"{gone} tainted unreachable:NoExecute", interval=2.0)
        moved = wait.until(
            lambda: next(
                (
                    p
                    for p in kit.live_pods(api, baseline.NAMESPACE, "app=cluster-test")
                    if p["spec"].get("nodeName") not in (None, gone)
                ),
                None,
            ),
            timeout=60,
            what="the replacement bound to the other car",
        )
        assert moved is not None
        assert moved["spec"]["nodeName"] == next(c for c in cars if c != gone)
        bound = kit.scheduled_at(moved)
        assert bound is not None
        life = baseline.last_sign_of_life(api, baseline.Departure(gone, silenced), before=time.time())
        assert bound >= life - 1

    finally:
        api.delete(f"/apis/apps/v1/namespaces/{baseline.NAMESPACE}/deployments/cluster-test")
