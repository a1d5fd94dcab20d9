"""Car identities for the test bed: a car's client certificate, its kubeconfig, and the
per-car RBAC objects that let it touch its own VehicleNode and Lease and nothing else.

Why this exists: a car's agent must be able to report its own state and renew its own
Lease, and nothing more (docs/adr/0002-car-identity.md). That is enforced by the API server:
the car authenticates as the x509 user ``curbside:car:<car>`` in group ``curbside:cars``;
RBAC objects created for that car alone (``render_car_rbac``, with ``resourceNames``) grant
it reads and writes of its own objects; the ValidatingAdmissionPolicy in config/rbac/
checks what its writes change. Tests and the demo enroll cars here, the way production
enrollment will: in production the car generates its key, sends a CertificateSigningRequest
for signer ``kubernetes.io/kube-apiserver-client``, and the enroller approves it and creates
the same RBAC objects (the operator, later; the rendering moves with it). Here the test bed
signs with its own cluster CA directly, because it holds that CA and a test wants no
approval round trip.

``render_car_rbac`` and ``render_kubeconfig`` are pure; ``enroll_car`` and friends write
files under the test bed's folder and talk to its API server.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from curbside_testbed import bed as testbed
from curbside_testbed import pki

CAR_GROUP = "curbside:cars"
"""Every car's x509 organisation (O); the admission policy applies to this group."""
USER_PREFIX = "curbside:car:"
"""A car's user name is this prefix and the car's name (= its VehicleNode, Node and Lease)."""
CARS_NAMESPACE = "curbside-cars"
"""Where car Leases live, one per car, named like the car."""
CERT_VALIDITY = dt.timedelta(days=30)
"""Car certificates are short-lived; the agent renews its certificate well before expiry."""
RBAC_LABEL = "curbside.dev/car-identity"
"""Set to "true" on every per-car RBAC object, so all of them can be listed at once."""
FIELD_MANAGER = "curbside-enrollment"

# A car's name becomes a Node, VehicleNode and Lease name: a DNS-1123 subdomain.
_CAR_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_RBAC_API = "rbac.authorization.k8s.io"


class IdentityError(ValueError):
    """A car name or a kubeconfig that cannot be used; the message says why."""


def check_car_name(car: str) -> str:
    """Return ``car`` if it can name a Node, VehicleNode and Lease; raise IdentityError if not."""
    if len(car) > 253 or not _CAR_NAME.match(car):
        raise IdentityError(f"car name {car!r}: use a DNS-1123 subdomain (lowercase, digits, '-', '.')")
    return car


def username(car: str) -> str:
    """The user a car authenticates as."""
    return USER_PREFIX + check_car_name(car)


def car_of(user: str) -> str | None:
    """The car behind a user name, or None if ``user`` is not a car's."""
    car = user.removeprefix(USER_PREFIX)
    if car == user or not _CAR_NAME.match(car) or len(car) > 253:
        return None
    return car


def client_identity(car: str) -> pki.ClientIdentity:
    """The car's certificate subject: CN is its user, O its group."""
    return pki.ClientIdentity(file_stem=check_car_name(car), user=username(car), groups=(CAR_GROUP,))


# -- pure rendering -----------------------------------------------------------------------
def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/part-of": "curbside", RBAC_LABEL: "true"},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def _rule(group: str, resource: str, car: str, verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": [resource], "resourceNames": [car], "verbs": verbs}


def render_car_rbac(car: str, *, namespace: str = CARS_NAMESPACE) -> list[dict[str, Any]]:
    """The four RBAC objects one car needs, each naming that car only.

    A ClusterRole and ClusterRoleBinding for its VehicleNode (cluster-scoped): get, list and
    watch (list/watch only with ``fieldSelector=metadata.name=<car>``, which RBAC matches
    against resourceNames) and get/patch/update of its status. A Role and RoleBinding in
    ``namespace`` for its Lease: get, update, patch. Creating the Lease is granted to the
    whole group (config/rbac/cars.yaml), because RBAC cannot restrict create by name.
    """
    name = username(car)
    subject = {"apiGroup": _RBAC_API, "kind": "User", "name": name}
    return [
        {
            "apiVersion": f"{_RBAC_API}/v1",
            "kind": "ClusterRole",
            "metadata": _meta(name),
            "rules": [
                _rule("curbside.dev", "vehiclenodes", car, ["get", "list", "watch"]),
                _rule("curbside.dev", "vehiclenodes/status", car, ["get", "patch", "update"]),
            ],
        },
        {
            "apiVersion": f"{_RBAC_API}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(name),
            "roleRef": {"apiGroup": _RBAC_API, "kind": "ClusterRole", "name": name},
            "subjects": [subject],
        },
        {
            "apiVersion": f"{_RBAC_API}/v1",
            "kind": "Role",
            "metadata": _meta(name, namespace),
            "rules": [_rule("coordination.k8s.io", "leases", car, ["get", "update", "patch"])],
        },
        {
            "apiVersion": f"{_RBAC_API}/v1",
            "kind": "RoleBinding",
            "metadata": _meta(name, namespace),
            "roleRef": {"apiGroup": _RBAC_API, "kind": "Role", "name": name},
            "subjects": [subject],
        },
    ]


_PLURALS = {
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
}


def object_path(doc: dict[str, Any]) -> str:
    """The API path of one object ``render_car_rbac`` makes."""
    kind = doc["kind"]
    if kind not in _PLURALS:
        raise IdentityError(f"no API path known for kind {kind!r}")
    meta = doc["metadata"]
    scope = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
    return f"/apis/{doc['apiVersion']}{scope}/{_PLURALS[kind]}/{meta['name']}"


def render_kubeconfig(
    *, context: str, server: str, ca: Path, cert: Path, key: Path, user: str
) -> dict[str, Any]:
    """A kubeconfig with one cluster, one x509 user and one context, all current."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
    }


@dataclass(frozen=True)
class Connection:
    """What an HTTP client needs from a kubeconfig's current context."""

    server: str
    ca: Path
    cert: Path
    key: Path


def connection(config: dict[str, Any]) -> Connection:
    """The current context's server, CA and client certificate files of a kubeconfig."""

    def entry(section: str, name: str) -> dict[str, Any]:
        for item in config.get(section) or []:
            if item.get("name") == name:
                return dict(item[section.removesuffix("s")])
        raise IdentityError(f"kubeconfig has no {section[:-1]} named {name!r}")

    context = entry("contexts", str(config.get("current-context") or ""))
    cluster, user = entry("clusters", context["cluster"]), entry("users", context["user"])
    try:
        return Connection(
            server=cluster["server"],
            ca=Path(cluster["certificate-authority"]),
            cert=Path(user["client-certificate"]),
            key=Path(user["client-key"]),
        )
    except KeyError as exc:
        raise IdentityError(f"kubeconfig lacks {exc.args[0]} (file-based x509 credentials expected)") from exc


def http_client(kubeconfig: Path, *, timeout: float = 30.0) -> httpx.Client:
    """An HTTP client that authenticates with the kubeconfig's x509 client certificate."""
    conn = connection(yaml.safe_load(kubeconfig.read_text()))
    ctx = ssl.create_default_context(cafile=str(conn.ca))
    ctx.load_cert_chain(conn.cert, conn.key)
    return httpx.Client(base_url=conn.server, verify=ctx, timeout=timeout)


# -- certificates -------------------------------------------------------------------------
def issue_certificate(
    identity: pki.ClientIdentity,
    *,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> tuple[bytes, bytes]:
    """A client certificate (PEM) and its new private key (PEM, PKCS#8) for ``identity``,
    valid from ``not_before`` to ``not_after``. Pure apart from key generation."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, identity.user)]
    subject += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in identity.groups]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


# -- the test bed -------------------------------------------------------------------------
def credentials_dir(bed: testbed.TestBed, folder: str) -> Path:
    return bed.root / "cars" / folder


def issue_credentials(
    bed: testbed.TestBed,
    car: str,
    *,
    folder: str | None = None,
    not_before: dt.datetime | None = None,
    validity: dt.timedelta = CERT_VALIDITY,
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
) -> Path:
    """Write a certificate, key and kubeconfig for ``car`` under the test bed's ``cars/<folder>``
    (default: the car's name); return the kubeconfig's path. Signed by the test bed's cluster
    CA unless ``ca`` is given (a test's rogue CA)."""
    identity = client_identity(car)
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key, ca_cert = ca or pki.load_ca(bed.root / "pki")
    cert_pem, key_pem = issue_certificate(
        identity, ca_key=ca_key, ca_cert=ca_cert, not_before=start, not_after=start + validity
    )
    out = credentials_dir(bed, folder or car)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert, key, kubeconfig = out / "tls.crt", out / "tls.key", out / "kubeconfig"
    cert.write_bytes(cert_pem)
    key.touch(mode=0o600)
    key.write_bytes(key_pem)
    config = render_kubeconfig(
        context=bed.context,
        server=bed.server,
        ca=(bed.root / "pki" / "ca.crt").resolve(),
        cert=cert.resolve(),
        key=key.resolve(),
        user=identity.user,
    )
    kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
    return kubeconfig


def apply(client: httpx.Client, docs: list[dict[str, Any]]) -> None:
    """Server-side apply each object (idempotent: enrolling a car twice changes nothing)."""
    for doc in docs:
        r = client.patch(
            object_path(doc),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            json=doc,
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        if r.status_code not in (200, 201):
            raise testbed.TestBedError(f"applying {doc['kind']} {doc['metadata']['name']}: {r.text[:300]}")


def remove(client: httpx.Client, docs: list[dict[str, Any]]) -> None:
    """Delete each object; one that is already gone is fine."""
    for doc in docs:
        r = client.delete(object_path(doc))
        if r.status_code not in (200, 404):
            raise testbed.TestBedError(f"deleting {doc['kind']} {doc['metadata']['name']}: {r.text[:300]}")


def enroll_car(bed: testbed.TestBed, car: str) -> Path:
    """Give ``car`` its identity: a certificate and kubeconfig, and its own RBAC objects.

    The VehicleNode and Lease are not created here: the operator makes the VehicleNode for
    the car's Node, and the agent creates its Lease. Returns the kubeconfig's path.
    """
    kubeconfig = issue_credentials(bed, car)
    with bed.http() as client:
        apply(client, render_car_rbac(car))
    return kubeconfig


def unenroll_car(bed: testbed.TestBed, car: str) -> None:
    """Delete the car's RBAC objects and credentials. Its certificate stays valid until it
    expires but then grants nothing: every car permission but creating a Lease is per car,
    and the admission policy refuses that create to a car without its own Lease Role."""
    with bed.http() as client:
        remove(client, render_car_rbac(car))
    shutil.rmtree(credentials_dir(bed, car), ignore_errors=True)
