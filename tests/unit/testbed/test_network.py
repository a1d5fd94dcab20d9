"""Every address the test bed hands out lies in 198.18.0.0/15 (or is loopback)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
from cryptography import x509

from curbside_testbed import build, components, network, pki

ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b")


def _in_reserved_or_loopback(text: str) -> bool:
    net = ipaddress.ip_network(text, strict=False)
    return net.subnet_of(network.RESERVED) or net.is_loopback


@pytest.mark.parametrize("name", components.ORDER)
def test_component_flags_use_only_loopback_and_the_reserved_range(tmp_path: Path, name: str) -> None:
    layout = components.Layout(root=tmp_path, ports=components.Ports(2379, 2380, 6443, 10257, 10259, 10247))
    cmd = components.command(name, layout, build.Toolchain("v1.35.4", "k", tmp_path / "bin"))
    found = [m for arg in cmd for m in ADDRESS.findall(arg)]
    stray = [a for a in found if not _in_reserved_or_loopback(a)]
    assert not stray, f"{name}: {stray} in {cmd}"


def test_kwok_and_the_api_server_get_addresses_from_the_plan(tmp_path: Path) -> None:
    layout = components.Layout(root=tmp_path, ports=components.Ports(2379, 2380, 6443, 10257, 10259, 10247))
    tc = build.Toolchain("v1.35.4", "k", tmp_path / "bin")
    kwok = components.command("kwok", layout, tc)
    assert f"--node-ip={network.KWOK_NODE_IP}" in kwok
    assert "--cidr=198.18.128.1/17" in kwok
    assert "--service-cluster-ip-range=198.19.0.0/16" in components.command("kube-apiserver", layout, tc)


def test_the_api_servers_certificate_names_the_kubernetes_service_address(tmp_path: Path) -> None:
    pki.create(tmp_path, bed_name="plan")
    cert = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert network.API_SERVICE_IP in sans.get_values_for_type(x509.IPAddress)
    assert all(_in_reserved_or_loopback(str(ip)) for ip in sans.get_values_for_type(x509.IPAddress))


def test_a_plan_outside_the_reserved_range_or_overlapping_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    network.check()
    monkeypatch.setattr(network, "SERVICES", ipaddress.IPv4Network("10.96.0.0/16"))
    with pytest.raises(ValueError, match=r"SERVICES 10\.96\.0\.0/16 is outside 198\.18\.0\.0/15"):
        network.check()
    monkeypatch.setattr(network, "SERVICES", ipaddress.IPv4Network("198.18.128.0/24"))
    with pytest.raises(ValueError, match="KWOK_PODS .* overlaps SERVICES"):
        network.check()
