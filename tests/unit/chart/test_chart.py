"""The Helm chart, rendered: lint, template, and what every object must say.

Runs ``helm lint`` and ``helm template`` (the test bed's pinned helm) for the default values and
every ``charts/curbside/ci/*-values.yaml`` scenario, then checks the rendered objects against
the rest of the repository: the operator's settings, config/rbac (RBAC rules and the car
admission policy), the metric names the alerts use, the generated dashboards, Pod Security
``restricted`` (statically here; ``tests/cluster/chart`` asks a real API server).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from curbside_agent import metrics as agent_metrics
from curbside_operator import metrics as operator_metrics
from curbside_operator import settings
from curbside_worker import metrics as worker_metrics
from tests.support import helm as h
from tests.support import pods

SCENARIOS = [None, *h.SCENARIOS]
IDS = [h.scenario_id(s) for s in SCENARIOS]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def test_there_are_ci_scenarios() -> None:
    assert {h.scenario_id(s) for s in h.SCENARIOS} >= {"minimal", "monitoring", "production"}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_helm_lint_is_clean(scenario: Path | None) -> None:
    out = h.helm("lint", "--strict", str(h.CHART), *h.values_args(scenario), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[WARNING]" not in out.stdout, out.stdout
    assert "[ERROR]" not in out.stdout, out.stdout


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_template_renders_labelled_unique_objects(scenario: Path | None) -> None:
    docs = h.render(scenario)
    assert docs
    seen = set()
    for doc in docs:
        meta = doc["metadata"]
        key = (doc["kind"], meta.get("namespace"), meta["name"])
        assert key not in seen, f"rendered twice: {key}"
        seen.add(key)
        assert meta["labels"]["app.kubernetes.io/part-of"] == "curbside", key
        assert meta["labels"]["app.kubernetes.io/instance"] == "curbside", key


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_every_pod_is_restricted(scenario: Path | None) -> None:
    """Pod Security ``restricted``, checked statically (the cluster test asks the API server)."""
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim"}
    allowed_volumes |= {"projected", "secret"}
    for name, pod in h.pod_templates(h.render(scenario)):
        spec = pod["spec"]
        psc = spec.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True, name
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), f"{name}: {key}"
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= allowed_volumes, f"{name}: volume {volume}"
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}/{c['name']}"
            assert not sc.get("privileged"), f"{name}/{c['name']}"
            assert sc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}"
            assert c.get("resources", {}).get("limits", {}).get("memory"), f"{name}/{c['name']}: memory limit"


def operator_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    deployment = one(docs, "Deployment", "-operator")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_operator_settings_are_valid_operator_config(scenario: Path | None) -> None:
    """The operator's environment parses as its own settings object (types, bounds, no typos)."""
    env = operator_env(h.render(scenario))
    assert all(k.startswith(settings.ENV_PREFIX) for k in env), env
    known = {settings.ENV_PREFIX + f.upper() for f in settings.OperatorConfig.model_fields}
    assert set(env) <= known, set(env) - known
    config = settings.OperatorConfig.from_env(env)
    assert config.metrics_port
    assert config.dispatcher_port


def test_values_expose_every_operator_setting() -> None:
    """Each OperatorConfig field is a documented value or set by the chart itself."""
    values = yaml.safe_load((h.CHART / "values.yaml").read_text())
    exposed = {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower() for k in values["operator"]["settings"]}
    by_chart = {
        "lease_namespace",
        "ledger_path",
        "dispatcher_host",
        "dispatcher_port",
        "dispatcher_url",
        "metrics_host",
        "metrics_port",
        "worker_image",
    }
    assert exposed | by_chart == set(settings.OperatorConfig.model_fields)
    assert not exposed & by_chart


def test_settings_reach_the_operator() -> None:
    env = operator_env(h.render(sets={"operator.settings.carLeaseGraceSeconds": "30"}))
    assert env["CURBSIDE_CAR_LEASE_GRACE_SECONDS"] == "30"
    assert "CURBSIDE_PARTITION_THRESHOLD" not in env  # null: the operator's default


def test_operator_deployment_shape() -> None:
    docs = h.render()
    deployment = one(docs, "Deployment", "-operator")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = operator_env(docs)
    assert ports["dispatcher"] == int(env["CURBSIDE_DISPATCHER_PORT"]) == 8470
    assert ports["metrics"] == int(env["CURBSIDE_METRICS_PORT"])
    assert env["CURBSIDE_METRICS_HOST"] == "0.0.0.0"  # reachable through the metrics Service
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "dispatcher"}
    assert container["startupProbe"]["httpGet"]["port"] == "dispatcher"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert f"--liveness=http://0.0.0.0:{ports['health']}/healthz" in container["args"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "ledger")
    assert Path(env["CURBSIDE_LEDGER_PATH"]).parent == Path(mount["mountPath"])
    volume = next(v for v in pod["volumes"] if v["name"] == "ledger")
    claim = one(docs, "PersistentVolumeClaim", "-ledger")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]


def test_minimal_scenario_ledger_on_emptydir() -> None:
    docs = h.render(h.CHART / "ci" / "minimal-values.yaml")
    assert not by_kind(docs, "PersistentVolumeClaim")
    assert not by_kind(docs, "DaemonSet")
    assert not by_kind(docs, "ValidatingAdmissionPolicy")
    pod = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    assert next(v for v in pod["volumes"] if v["name"] == "ledger")["emptyDir"] == {}


def test_dispatcher_service_is_what_the_operator_defaults_to() -> None:
    """Release ``curbside`` in ``curbside-system``: the Service is the operator's default URL."""
    docs = h.render()
    service = one(docs, "Service", "-dispatcher")
    assert service["metadata"]["name"] == "curbside-dispatcher"
    assert service["spec"]["ports"][0]["port"] == 8470
    default_url = settings.OperatorConfig.model_fields["dispatcher_url"].default
    assert operator_env(docs)["CURBSIDE_DISPATCHER_URL"] == default_url
    other = operator_env(h.render(release="fleet", namespace="edge"))
    assert other["CURBSIDE_DISPATCHER_URL"] == "http://fleet-curbside-dispatcher.edge.svc:8470"


def test_images_come_from_values() -> None:
    docs = h.render(h.CHART / "ci" / "production-values.yaml")
    operator = one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    assert operator["image"] == "registry.example.com/curbside/operator@sha256:" + "0" * 63 + "1"
    agent = one(docs, "DaemonSet", "-agent")["spec"]["template"]["spec"]["containers"][0]
    assert agent["image"].startswith("registry.example.com/curbside/agent@sha256:")
    assert operator_env(docs)["CURBSIDE_WORKER_IMAGE"] == "registry.example.com/curbside/worker:0.1.0-cuda"
    assert operator_env(docs)["CURBSIDE_LEASE_NAMESPACE"] == "fleet-leases"
    assert not by_kind(docs, "Namespace")
    default = operator_env(h.render())["CURBSIDE_WORKER_IMAGE"]
    assert default == settings.OperatorConfig.model_fields["worker_image"].default


def test_agent_daemonset_runs_on_car_nodes_only() -> None:
    ds = one(h.render(), "DaemonSet", "-agent")
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"curbside.dev/vehicle": "true"}
    tolerations = {(t["key"], t["effect"]): t for t in pod["tolerations"]}
    assert ("curbside.dev/vehicle", "NoSchedule") in tolerations
    assert "tolerationSeconds" not in tolerations[("curbside.dev/driving", "NoExecute")]
    args = pod["containers"][0]["args"]
    assert all(a.startswith("--") for a in args)  # the image's entry point is curbside-agent
    assert "--vehicle=$(NODE_NAME)" in args
    assert "--lease-namespace=curbside-cars" in args


def test_agent_metrics_listen_on_the_pod_ip() -> None:
    """Not loopback (Prometheus could not reach it), not the node's IP (the car's networks)."""
    container = one(h.render(), "DaemonSet", "-agent")["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert "--metrics-host=$(POD_IP)" in args
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    port = next(a for a in args if a.startswith("--metrics-port=")).split("=", 1)[1]
    assert [p for p in container["ports"] if p["name"] == "metrics"] == [
        {"name": "metrics", "containerPort": int(port), "protocol": "TCP"}
    ]
    off = one(h.render(sets={"agent.metricsPort": "0"}), "DaemonSet", "-agent")
    assert "ports" not in off["spec"]["template"]["spec"]["containers"][0]


def test_agent_pod_monitor_scrapes_the_agents_metrics_port() -> None:
    docs = h.render(h.CHART / "ci" / "monitoring-values.yaml")
    monitor = one(docs, "PodMonitor", "-agent")
    pod = one(docs, "DaemonSet", "-agent")["spec"]["template"]
    assert set(monitor["spec"]["selector"]["matchLabels"].items()) <= set(pod["metadata"]["labels"].items())
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert not by_kind(h.render(), "PodMonitor")  # off by default


def test_inference_pod_monitor_scrapes_the_pods_the_operator_places() -> None:
    docs = h.render(h.CHART / "ci" / "monitoring-values.yaml")
    monitor = one(docs, "PodMonitor", "-inference")
    pod = pods.pod_body()
    assert set(monitor["spec"]["selector"]["matchLabels"].items()) <= set(pod["metadata"]["labels"].items())
    assert monitor["spec"]["namespaceSelector"] == {"any": True}  # jobs live in users' namespaces
    declared = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    scraped = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    assert scraped == {"metrics", "triton-metrics"} <= declared
    assert not [d for d in by_kind(h.render(), "PodMonitor") if d["metadata"]["name"].endswith("-inference")]


@pytest.mark.parametrize(
    "sets",
    [
        {"bogus": "1"},
        {"operator.bogus": "1"},
        {"operator.settings.carLeaseGrace": "3"},
        {"images.pullPolicy": "x"},
    ],
    ids=["top", "nested", "setting-typo", "enum"],
)
def test_schema_refuses_unknown_or_bad_values(sets: dict[str, str]) -> None:
    out = h.helm("template", "x", str(h.CHART), *h.values_args(None, sets), check=False)
    assert out.returncode != 0
    assert "values don't meet the specifications of the schema" in out.stderr


def test_every_value_is_documented() -> None:
    """Each leaf of the schema is a key in values.yaml with a comment line right above it."""
    schema = json.loads((h.CHART / "values.schema.json").read_text())
    lines = (h.CHART / "values.yaml").read_text().splitlines()
    documented: dict[tuple[str, ...], bool] = {}
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        documented[tuple(k for _, k in stack)] = i > 0 and lines[i - 1].lstrip().startswith("#")

    def leaves(node: dict[str, Any], path: tuple[str, ...]) -> list[tuple[str, ...]]:
        # An object of documented keys is walked; one whose keys are plain data (resources) is a leaf.
        children = node.get("properties", {})
        if children and all("description" in sub for sub in children.values()):
            return [leaf for k, sub in node["properties"].items() for leaf in leaves(sub, (*path, k))]
        return [path]

    for leaf in leaves(schema, ()):
        assert documented.get(leaf), f"{'.'.join(leaf)}: missing from values.yaml or has no comment above"
    values = yaml.safe_load("\n".join(lines))
    assert schema["additionalProperties"] is False
    assert set(values) == set(schema["properties"])


def _rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: sorted(v) for k, v in rule.items()} for rule in doc["rules"]]


def test_rbac_is_config_rbac() -> None:
    """The chart grants exactly what config/rbac grants, each identity by its own name."""
    config = {
        (d["kind"], d["metadata"]["name"]): d
        for f in ("operator.yaml", "enrollment.yaml", "cars.yaml")
        for d in yaml.safe_load_all((h.REPO / "config" / "rbac" / f).read_text())
    }
    docs = h.render()
    pairs = {
        ("ClusterRole", "curbside-operator"): one(docs, "ClusterRole", "-operator"),
        ("Role", "curbside-operator"): one(docs, "Role", "-operator"),
        ("ClusterRole", "curbside-enrollment"): one(docs, "ClusterRole", "-enrollment"),
        ("Role", "curbside-enrollment"): one(docs, "Role", "-enrollment"),
        ("Role", "curbside-cars-create-lease"): one(docs, "Role", "-cars-create-lease"),
    }
    for key, rendered in pairs.items():
        assert _rules(rendered) == _rules(config[key]), key
    for binding in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        for subject in binding["subjects"]:
            if subject["kind"] == "ServiceAccount":
                assert subject["namespace"] == "curbside-system"
    tokenreviews = {
        "apiGroups": ["authentication.k8s.io"],
        "resources": ["tokenreviews"],
        "verbs": ["create"],
    }
    assert tokenreviews in _rules(one(docs, "ClusterRole", "-operator"))  # the dispatcher's callers
    group = one(docs, "RoleBinding", "-cars-create-lease")["subjects"]
    assert group == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "curbside:cars"}]


def _checks(policy: dict[str, Any]) -> list[tuple[str, str]]:
    def norm(text: str) -> str:
        return " ".join(text.split())

    return [
        (norm(v["expression"]), norm(v.get("message") or v.get("messageExpression", "")))
        for v in policy["spec"]["validations"]
    ]


def test_car_admission_policy_is_config_rbac() -> None:
    config = next(
        d
        for d in yaml.safe_load_all((h.REPO / "config" / "rbac" / "admission.yaml").read_text())
        if d["kind"] == "ValidatingAdmissionPolicy"
    )
    docs = h.render()
    cars = one(docs, "ValidatingAdmissionPolicy", "-car-writes")
    assert _checks(cars) == _checks(config)
    assert cars["spec"]["matchConstraints"] == config["spec"]["matchConstraints"]
    assert cars["spec"]["matchConditions"] == config["spec"]["matchConditions"]
    # The agent's policy: its own identity check first, then the same rules 2-4.
    agent = one(docs, "ValidatingAdmissionPolicy", "-agent-writes")
    assert _checks(agent)[1:] == _checks(config)[2:]
    assert "system:serviceaccount:curbside-system:curbside-agent" in json.dumps(
        agent["spec"]["matchConditions"]
    )
    for policy in (cars, agent):
        binding = one(docs, "ValidatingAdmissionPolicyBinding", policy["metadata"]["name"])
        assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}


def test_lease_namespace_reaches_every_rule() -> None:
    docs = h.render(sets={"cars.leaseNamespace": "fleet-leases"})
    text = yaml.safe_dump_all(docs)
    assert not re.search(r"curbside-cars\b(?!-)", text)
    assert one(docs, "Namespace", "fleet-leases")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]


def declared_metric_names() -> set[str]:
    names = set()
    for module in (operator_metrics, agent_metrics, worker_metrics):
        names |= {v for k, v in vars(module).items() if k.endswith("_NAME") and isinstance(v, str)}
    return names


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression uses (histogram series reduced to their base name)."""
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in re.findall(r"\bcurbside_[a-z0-9_]+", expr)}


def test_alerts_use_declared_metrics() -> None:
    docs = h.render(h.CHART / "ci" / "monitoring-values.yaml")
    rule = one(docs, "PrometheusRule", "curbside")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    names = {a["alert"] for a in alerts}
    assert {
        "CurbsideFleetShrinking",
        "CurbsideJobStalled",
        "CurbsideDeparturesNotHandled",
        "CurbsideControlPlanePartitionSuspected",
    } <= names
    declared = declared_metric_names()
    for alert in alerts:
        used = metric_names_in(alert["expr"])
        assert used, alert["alert"]
        assert used <= declared, f"{alert['alert']}: {used - declared}"
        assert alert["annotations"]["summary"]
        assert alert["labels"]["severity"]
    monitor = one(docs, "ServiceMonitor", "-operator")
    service = one(docs, "Service", "-metrics")
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert set(monitor["spec"]["selector"]["matchLabels"].items()) <= set(
        service["metadata"]["labels"].items()
    )


def test_dashboards_ship_as_sidecar_configmaps() -> None:
    files = sorted((h.CHART / "dashboards").glob("*.json"))
    assert {f.stem for f in files} == {"curbside-fleet", "curbside-jobs", "curbside-operator"}
    docs = h.render()
    for path in files:
        cm = one(docs, "ConfigMap", f"-dashboard-{path.stem}")
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "Curbside"
        assert json.loads(cm["data"][path.name]) == json.loads(path.read_text())


def test_helm_test_hook_checks_the_dispatcher() -> None:
    docs = h.render()
    pod = one(docs, "Pod", "-test-dispatcher")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert (
        "http://curbside-dispatcher.curbside-system.svc:8470/healthz"
        in pod["spec"]["containers"][0]["args"][0]
    )


def test_crds_are_the_generated_ones() -> None:
    for path in sorted((h.REPO / "crds").glob("*.yaml")):
        assert (h.CHART / "crds" / path.name).read_text() == path.read_text(), path.name
