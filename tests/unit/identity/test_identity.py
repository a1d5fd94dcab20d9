"""Car identity without a cluster: names, certificates, kubeconfigs, the per-car RBAC objects,
and the config/rbac manifests checked against the code that relies on them.

The cluster tests (tests/cluster/identity) show the API server enforces all this; these
catch, in milliseconds, the mistakes that would otherwise surface there as a puzzling 403:
a field added to OPERATOR_OWNED without an admission rule, a per-car rule the enroller does
not hold (RBAC's escalation check would refuse to create it), a manifest left out of the
kustomization, an undocumented operator permission.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from curbside_api.v1alpha1 import vehiclenode
from curbside_testbed import identity, pki

REPO = Path(__file__).resolve().parents[3]
RBAC_DIR = REPO / "config" / "rbac"
CAR = "car-00042"


def manifests(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((RBAC_DIR / name).read_text()) if d]


def one(name: str, kind: str, metadata_name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in manifests(name) if d["kind"] == kind and metadata_name in (None, d["metadata"]["name"])
    ]
    assert len(found) == 1, (name, kind, metadata_name, found)
    return found[0]


# -- names --------------------------------------------------------------------------------
def test_username_round_trips() -> None:
    assert identity.username(CAR) == "curbside:car:car-00042"
    assert identity.car_of(identity.username(CAR)) == CAR
    assert identity.car_of("curbside:car:eu.car-1") == "eu.car-1"


@pytest.mark.parametrize(
    "user", ["system:admin", "curbside:car:", "curbside:cars", "curbside:car:Car-1", "xcurbside:car:a"]
)
def test_car_of_other_users_is_none(user: str) -> None:
    assert identity.car_of(user) is None


@pytest.mark.parametrize("name", ["", "Car-1", "car_1", "-car", "car-", "a" * 254, "car:1", "car/1"])
def test_bad_car_names_are_refused(name: str) -> None:
    with pytest.raises(identity.IdentityError, match="DNS-1123"):
        identity.username(name)


def test_client_identity_is_user_and_group() -> None:
    ident = identity.client_identity(CAR)
    assert (ident.user, ident.groups, ident.file_stem) == ("curbside:car:car-00042", ("curbside:cars",), CAR)


# -- certificates -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    folder = tmp_path_factory.mktemp("pki")
    pki.create(folder, bed_name="unit")
    return pki.load_ca(folder)


def test_certificate_names_the_car_and_is_signed_by_the_ca(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    ca_key, ca_cert = ca
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    cert_pem, key_pem = identity.issue_certificate(
        identity.client_identity(CAR),
        ca_key=ca_key,
        ca_cert=ca_cert,
        not_before=start,
        not_after=start + identity.CERT_VALIDITY,
    )
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "curbside:car:car-00042"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "curbside:cars"
    ]
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (start, start + dt.timedelta(days=30))
    assert cert.issuer == ca_cert.subject
    cert.verify_directly_issued_by(ca_cert)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert b"PRIVATE KEY" in key_pem


# -- kubeconfig ---------------------------------------------------------------------------
def test_kubeconfig_round_trips_to_a_connection(tmp_path: Path) -> None:
    config = identity.render_kubeconfig(
        context="curbside-testbed-x",
        server="https://127.0.0.1:6443",
        ca=tmp_path / "ca.crt",
        cert=tmp_path / "tls.crt",
        key=tmp_path / "tls.key",
        user="curbside:car:car-00042",
    )
    reread = yaml.safe_load(yaml.safe_dump(config))
    assert identity.connection(reread) == identity.Connection(
        server="https://127.0.0.1:6443",
        ca=tmp_path / "ca.crt",
        cert=tmp_path / "tls.crt",
        key=tmp_path / "tls.key",
    )


def test_connection_needs_the_current_context_and_file_credentials(tmp_path: Path) -> None:
    config = identity.render_kubeconfig(
        context="c", server="https://127.0.0.1:1", ca=tmp_path, cert=tmp_path, key=tmp_path, user="u"
    )
    with pytest.raises(identity.IdentityError, match="no context named 'other'"):
        identity.connection({**config, "current-context": "other"})
    config["users"][0]["user"] = {"token": "t"}
    with pytest.raises(identity.IdentityError, match="client-certificate"):
        identity.connection(config)


# -- per-car RBAC -------------------------------------------------------------------------
def test_per_car_rbac_names_that_car_only() -> None:
    docs = identity.render_car_rbac(CAR)
    assert [d["kind"] for d in docs] == ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
    assert {d["metadata"]["name"] for d in docs} == {"curbside:car:car-00042"}
    rules = [r for d in docs for r in d.get("rules", [])]
    assert all(r["resourceNames"] == [CAR] for r in rules)
    grants = {(r["resources"][0], v) for r in rules for v in r["verbs"]}
    assert grants == {
        ("vehiclenodes", "get"),
        ("vehiclenodes", "list"),
        ("vehiclenodes", "watch"),
        ("vehiclenodes/status", "get"),
        ("vehiclenodes/status", "patch"),
        ("vehiclenodes/status", "update"),
        ("leases", "get"),
        ("leases", "update"),
        ("leases", "patch"),
    }
    for binding in (docs[1], docs[3]):
        assert binding["subjects"] == [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "curbside:car:car-00042"}
        ]
        assert binding["roleRef"]["name"] == binding["metadata"]["name"]
    assert docs[2]["metadata"]["namespace"] == docs[3]["metadata"]["namespace"] == "curbside-cars"
    assert all(d["metadata"]["labels"][identity.RBAC_LABEL] == "true" for d in docs)


def test_object_paths() -> None:
    paths = [identity.object_path(d) for d in identity.render_car_rbac(CAR)]
    assert paths == [
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/curbside:car:car-00042",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/curbside:car:car-00042",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/curbside-cars/roles/curbside:car:car-00042",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/curbside-cars/rolebindings/curbside:car:car-00042",
    ]
    with pytest.raises(identity.IdentityError, match="Secret"):
        identity.object_path({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "x"}})


def _holds(held: list[dict[str, Any]], group: str, resource: str, verb: str, name: str) -> bool:
    return any(
        group in r.get("apiGroups", [])
        and resource in r.get("resources", [])
        and verb in r.get("verbs", [])
        and name in r.get("resourceNames", [name])
        for r in held
    )


def test_the_enroller_holds_every_permission_it_grants() -> None:
    """RBAC refuses to create a role granting what its creator does not hold; the operator
    (operator.yaml + enrollment.yaml) must hold every per-car grant, cluster-wide for the
    ClusterRole and in curbside-cars for the Role."""
    cluster = one("operator.yaml", "ClusterRole")["rules"] + one("enrollment.yaml", "ClusterRole")["rules"]
    in_cars = cluster + one("operator.yaml", "Role")["rules"] + one("enrollment.yaml", "Role")["rules"]
    for doc in identity.render_car_rbac(CAR):
        held = cluster if doc["kind"] == "ClusterRole" else in_cars
        for rule in doc.get("rules", []):
            for verb in rule["verbs"]:
                assert _holds(held, rule["apiGroups"][0], rule["resources"][0], verb, CAR), (
                    doc["kind"],
                    rule,
                    verb,
                )


# -- the manifests ------------------------------------------------------------------------
def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((RBAC_DIR / "kustomization.yaml").read_text())["resources"]
    on_disk = {p.name for p in RBAC_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(on_disk)
    assert listed[0] == "namespaces.yaml"


def test_manifests_use_the_identity_constants() -> None:
    namespaces = {d["metadata"]["name"] for d in manifests("namespaces.yaml")}
    assert identity.CARS_NAMESPACE in namespaces
    binding = one("cars.yaml", "RoleBinding")
    assert binding["metadata"]["namespace"] == identity.CARS_NAMESPACE
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": identity.CAR_GROUP}
    ]
    assert one("cars.yaml", "Role")["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}
    ]
    policy = (RBAC_DIR / "admission.yaml").read_text()
    assert f"'{identity.CAR_GROUP}' in request.userInfo.groups" in policy
    assert f"startsWith('{identity.USER_PREFIX}')" in policy
    assert f"substring({len(identity.USER_PREFIX)})" in policy
    assert f"'{identity.CARS_NAMESPACE}'" in policy


def test_admission_policy_protects_every_operator_owned_field() -> None:
    validations = one("admission.yaml", "ValidatingAdmissionPolicy")["spec"]["validations"]
    for field in vehiclenode.OPERATOR_OWNED:
        rules = [
            v
            for v in validations
            if f"object.?status.?{field} == oldObject.?status.?{field}" in v["expression"]
        ]
        assert len(rules) == 1, field
        assert f"status.{field}" in rules[0]["message"], rules[0]
    assert all(v["reason"] == "Forbidden" for v in validations)
    assert all("message" in v or "messageExpression" in v for v in validations)


def test_policy_binding_denies() -> None:
    binding = one("admission.yaml", "ValidatingAdmissionPolicyBinding")
    policy = one("admission.yaml", "ValidatingAdmissionPolicy")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"


def test_no_manifest_grants_wildcards_secrets_or_escalation() -> None:
    for path in RBAC_DIR.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            for rule in (doc or {}).get("rules", []):
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], (path.name, rule)
                assert not {"secrets", "configmaps", "serviceaccounts/token"} & set(rule["resources"]), rule
                assert not {"escalate", "bind", "impersonate", "approve"} & set(rule["verbs"]), rule


def test_every_operator_rule_says_why() -> None:
    """Each rule in operator.yaml and enrollment.yaml follows a comment giving its reason."""
    for name in ("operator.yaml", "enrollment.yaml"):
        lines = (RBAC_DIR / name).read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"\s*- apiGroups:", line):
                assert lines[i - 1].strip().startswith("#"), f"{name}:{i + 1}: rule without a comment"
