"""One named test bed: its folder, ports and processes, and bringing it up and down.

Why this exists: ``curbside testbed up|down|env`` and the pytest fixture share one
implementation. A test bed's state (ports, pids) lives in ``state.json`` in its folder, so
``down`` works from another shell, and two named test beds never share a port or a file.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import time
from dataclasses import asdict
from pathlib import Path

import httpx
import yaml

from curbside_testbed import build, components, fleet, guard, pki

CONTEXT_PREFIX = guard.CONTEXT_PREFIX
NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")


class TestBedError(RuntimeError):
    """The test bed could not be brought up, used or torn down; the message says why."""


def beds_root() -> Path:
    return build.cache_root() / "beds"


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class TestBed:
    """A local control plane named ``name``; see ``up`` and ``down``."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = "default") -> None:
        if not NAME_PATTERN.match(name):
            raise TestBedError(f"test bed name {name!r}: use lowercase letters, digits and '-' (max 40)")
        self.name = name
        self.root = beds_root() / name
        self.context = CONTEXT_PREFIX + name
        self.layout: components.Layout | None = None
        if (self.root / "state.json").exists():
            self.layout = self._load()

    # -- state -------------------------------------------------------------------------
    def _load(self) -> components.Layout:
        data = json.loads((self.root / "state.json").read_text())
        return components.Layout(
            root=self.root,
            ports=components.Ports(**data["ports"]),
            lease_seconds=data.get("lease_seconds", 40),
            pids=data.get("pids", {}),
        )

    def _save(self) -> None:
        assert self.layout is not None
        state = {
            "name": self.name,
            "ports": asdict(self.layout.ports),
            "lease_seconds": self.layout.lease_seconds,
            "pids": self.layout.pids,
        }
        (self.root / "state.json").write_text(json.dumps(state, indent=2))

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log of writes (see audit.py)."""
        return self.root / "logs" / "audit.log"

    @property
    def server(self) -> str:
        assert self.layout is not None
        return f"https://127.0.0.1:{self.layout.ports.apiserver}"

    def running(self) -> dict[str, bool]:
        """Which components have a live process."""
        layout = self.layout
        if layout is None:
            return {}
        return {n: n in layout.pids and components.is_ours(layout.pids[n], layout) for n in components.ORDER}

    # -- clients -----------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.root / "pki" / "ca.crt"))
        ctx.load_cert_chain(self.root / "pki" / "admin.crt", self.root / "pki" / "admin.key")
        return ctx

    def http(self, timeout: float = 30.0) -> httpx.Client:
        """An admin HTTP client for this test bed's API server."""
        return httpx.Client(base_url=self.server, verify=self.ssl_context(), timeout=timeout)

    # -- lifecycle ---------------------------------------------------------------------
    def _kubeconfig_dict(self, stem: str, crt: Path, key: Path) -> dict[str, object]:
        ca = (self.root / "pki" / "ca.crt").resolve()
        user = f"{self.context}-{stem}"
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": self.context, "cluster": {"server": self.server, "certificate-authority": str(ca)}}
            ],
            "users": [{"name": user, "user": {"client-certificate": str(crt), "client-key": str(key)}}],
            "contexts": [{"name": self.context, "context": {"cluster": self.context, "user": user}}],
            "current-context": self.context,
        }

    def _write_kubeconfigs(self) -> None:
        assert self.layout is not None
        for identity in pki.IDENTITIES:
            stem = identity.file_stem
            config = self._kubeconfig_dict(
                stem, self.root / "pki" / f"{stem}.crt", self.root / "pki" / f"{stem}.key"
            )
            self.layout.kubeconfig(stem).write_text(yaml.safe_dump(config, sort_keys=False))

    def kubeconfig_for(self, user: str, *, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for a new x509 identity signed by this bed's CA (for tests)."""
        stem = "user-" + re.sub(r"[^a-z0-9-]", "-", user.lower())
        identity = pki.ClientIdentity(stem, user, groups)
        ca_key, ca_cert = pki.load_ca(self.root / "pki")
        crt, key = pki.issue_client(self.root / "pki", identity, ca_key=ca_key, ca_cert=ca_cert)
        path = self.root / f"{stem}.kubeconfig"
        path.write_text(yaml.safe_dump(self._kubeconfig_dict(stem, crt, key), sort_keys=False))
        return path

    def up(self, *, cars: int = 0, lease_seconds: int | None = None, timeout: float = 300.0) -> None:
        """Build if needed, start every component, create ``cars`` car Nodes, wait until Ready."""
        tc = build.ensure_built()
        self.root.mkdir(parents=True, exist_ok=True)
        if self.layout is None:
            self.layout = components.Layout(
                root=self.root,
                ports=components.Ports(*_free_ports(6)),
                lease_seconds=lease_seconds or components.lease_seconds_for(cars),
            )
        pki.create(self.root / "pki", bed_name=self.name)
        self._write_kubeconfigs()
        deadline = time.monotonic() + timeout
        alive = self.running()
        for name in components.ORDER:
            if not alive.get(name):
                components.start(name, self.layout, tc)
                self._save()
            if name == "etcd":
                self._wait_port(self.layout.ports.etcd_client, "etcd", deadline)
            elif name == "kube-apiserver":
                self._wait_ready(deadline)
        self._wait_controllers(deadline)
        if cars:
            with self.http() as client:
                fleet.ensure_cars(client, cars, ssl_context=self.ssl_context())
                fleet.wait_ready(client, cars, deadline=deadline, check=self._check_alive)

    def restart(self, component: str, *, timeout: float = 120.0) -> None:
        """Stop and start one component (the data in etcd stays)."""
        if self.layout is None:
            raise TestBedError(f"test bed {self.name!r} is not up")
        components.stop(component, self.layout)
        components.start(component, self.layout, build.ensure_built())
        self._save()
        if component == "kube-apiserver":
            self._wait_ready(time.monotonic() + timeout)

    def stop(self, component: str) -> None:
        if self.layout is not None:
            components.stop(component, self.layout)
            self._save()

    def down(self, *, keep_data: bool = False) -> None:
        """Stop every process of this test bed and remove its folder."""
        if self.layout is not None:
            for name in reversed(components.ORDER):
                components.stop(name, self.layout)
        leftovers = [n for n, alive in self.running().items() if alive]
        if leftovers:
            raise TestBedError(f"test bed {self.name!r}: still running after down: {leftovers}")
        if not keep_data and self.root.exists():
            shutil.rmtree(self.root)
        self.layout = None

    # -- waiting -----------------------------------------------------------------------
    def _check_alive(self) -> None:
        for name, alive in self.running().items():
            if not alive:
                assert self.layout is not None
                raise TestBedError(f"{name} exited; last log lines:\n{components.tail(name, self.layout)}")

    def _wait_port(self, port: int, name: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive_one(name)
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        raise TestBedError(f"{name} did not open port {port} in time")

    def _check_alive_one(self, name: str) -> None:
        assert self.layout is not None
        if not self.running().get(name):
            raise TestBedError(f"{name} exited; last log lines:\n{components.tail(name, self.layout)}")

    def _wait_ready(self, deadline: float) -> None:
        with self.http(timeout=5) as client:
            while time.monotonic() < deadline:
                self._check_alive_one("kube-apiserver")
                try:
                    if client.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise TestBedError("kube-apiserver did not become ready in time")

    def _wait_controllers(self, deadline: float) -> None:
        """Controller-manager is working once it made the default ServiceAccount."""
        with self.http(timeout=5) as client:
            while time.monotonic() < deadline:
                self._check_alive()
                r = client.get("/api/v1/namespaces/default/serviceaccounts/default")
                if r.status_code == 200:
                    return
                time.sleep(0.2)
        raise TestBedError("kube-controller-manager did not create the default ServiceAccount in time")


def list_beds() -> list[str]:
    root = beds_root()
    return sorted(p.name for p in root.iterdir() if (p / "state.json").exists()) if root.exists() else []
