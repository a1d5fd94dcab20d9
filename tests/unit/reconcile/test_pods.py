"""The inference pod's contract: name, binding, ownership, tolerations, restricted security, env,
and the worker's identity: a projected, pod-bound token for the dispatcher, never a secret."""

from __future__ import annotations

from typing import Any

from curbside_operator.reconcile import placement, pods
from tests.support.pods import job, pod_body


def test_pod_is_bound_named_owned_and_labelled() -> None:
    body = pod_body()
    meta, spec = body["metadata"], body["spec"]
    assert (meta["name"], meta["namespace"], spec["nodeName"]) == ("seti-car-00001", "science", "car-00001")
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "curbside.dev/v1alpha1",
            "kind": "InferenceJob",
            "name": "seti",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"]["curbside.dev/job"] == "seti"
    assert meta["labels"]["curbside.dev/car"] == "car-00001"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "curbside"


def test_same_job_and_car_give_the_same_pod_and_long_names_fit() -> None:
    assert pod_body() == pod_body()
    long = pod_body(job("j" * 60), car="car-" + "9" * 40)
    assert len(long["metadata"]["name"]) <= 63
    assert long["metadata"]["name"] == placement.pod_name("j" * 60, "car-" + "9" * 40)


def test_pod_tolerates_the_car_taint_and_the_driving_taint_only_briefly() -> None:
    tolerations = {t["key"]: t for t in pod_body()["spec"]["tolerations"]}
    assert tolerations["curbside.dev/vehicle"]["effect"] == "NoSchedule"
    driving = tolerations["curbside.dev/driving"]
    assert (driving["effect"], driving["tolerationSeconds"]) == ("NoExecute", pods.DRIVING_TOLERATION_SECONDS)


def test_pod_meets_pod_security_restricted() -> None:
    spec = pod_body()["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}


def test_worker_env_is_what_curbside_worker_reads() -> None:
    worker = next(c for c in pod_body()["spec"]["containers"] if c["name"] == "worker")
    env = {e["name"]: e["value"] for e in worker["env"]}
    assert env == {
        "CURBSIDE_DISPATCHER_URL": "http://d:8470",
        "CURBSIDE_JOB_NAMESPACE": "science",
        "CURBSIDE_JOB_NAME": "seti",
        "CURBSIDE_CAR": "car-00001",
        "CURBSIDE_OWNER": "alice",
        "CURBSIDE_TOKEN_FILE": "/var/run/secrets/curbside.dev/dispatcher/token",
        "CURBSIDE_TRITON_URL": "127.0.0.1:8001",
        "CURBSIDE_MODEL": "seti-spike-search",
        "CURBSIDE_BATCH_SIZE": "8",
        "CURBSIDE_METRICS_PORT": "9465",
        "CURBSIDE_METRICS_HOST": "0.0.0.0",
    }
    # The metrics port the worker is told to serve is the one the pod declares (and the chart's
    # inference PodMonitor scrapes by name).
    assert worker["ports"] == [{"name": "metrics", "containerPort": int(env["CURBSIDE_METRICS_PORT"])}]
    triton = next(
        c
        for c in pod_body(job(repository="s3://models/x"))["spec"]["containers"]
        if c["name"] == "tritonserver"
    )
    assert "--model-repository=s3://models/x" in triton["args"]


def test_the_worker_reads_a_projected_pod_bound_token_and_no_secret_is_on_the_car() -> None:
    spec = pod_body()["spec"]
    assert spec["automountServiceAccountToken"] is False  # no API credentials on the car
    assert "serviceAccountName" not in spec  # the namespace's default account, bound to this pod
    assert spec["volumes"][:1] == [
        {
            "name": "dispatcher-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "curbside-dispatcher",
                            "expirationSeconds": 600,
                            "path": "token",
                        }
                    }
                ]
            },
        }
    ]
    mounts = {c["name"]: c.get("volumeMounts") for c in spec["containers"]}
    token = [m for m in mounts["worker"] if m["name"] == "dispatcher-token"]
    path = "/var/run/secrets/curbside.dev/dispatcher"
    assert token == [{"name": "dispatcher-token", "mountPath": path, "readOnly": True}]
    assert not [m for m in mounts["tritonserver"] if m["name"] == "dispatcher-token"]
    assert "secret" not in repr(spec["volumes"]).lower()
    assert not [e for c in spec["containers"] for e in c.get("env", []) if e["name"] == "CURBSIDE_TOKEN"]


def test_worker_and_triton_share_one_memory_backed_dev_shm() -> None:
    spec = pod_body()["spec"]
    shm = [v for v in spec["volumes"] if v["name"] == "dshm"]
    assert shm == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}]
    for container in spec["containers"]:
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"], container["name"]


def test_the_simulators_kubelet_finds_the_token_the_pod_asks_for() -> None:
    from curbside_sim import podspec

    body = pod_body()
    body["metadata"]["uid"] = "pod-uid-1"
    assert podspec.projected_token(body) == podspec.ProjectedToken(
        namespace="science",
        pod="seti-car-00001",
        uid="pod-uid-1",
        service_account="default",
        audience=pods.DISPATCHER_AUDIENCE,
        expiration_seconds=pods.TOKEN_SECONDS,
    )


def test_curbside_worker_configures_itself_from_the_pod_env(monkeypatch: Any, tmp_path: Any) -> None:
    from curbside_worker import cli

    worker = next(c for c in pod_body()["spec"]["containers"] if c["name"] == "worker")
    for item in worker["env"]:
        monkeypatch.setenv(item["name"], item["value"])
    token = tmp_path / "token"  # where the kubelet projects it in the pod
    token.write_text("jwt")
    monkeypatch.setenv("CURBSIDE_TOKEN_FILE", str(token))
    config = cli.config_from(cli.parser().parse_args([]))
    assert (config.dispatcher_url, config.namespace, config.job, config.car) == (
        "http://d:8470",
        "science",
        "seti",
        "car-00001",
    )
    assert (config.token_file, config.model, config.batch_size) == (str(token), "seti-spike-search", 8)
