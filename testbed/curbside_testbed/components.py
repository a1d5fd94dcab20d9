"""The command lines of the test bed's processes, and starting and stopping them.

Why this exists: each control-plane component needs a dozen flags that only make sense
together (ports, certificates, identities), and the test bed must be able to stop and restart
any one of them (the API server restart test) and leave nothing running on ``down``. Keeping
the flags in one table makes the test bed's differences from a production cluster reviewable.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from curbside_testbed import build, network

# Start order; stop order is the reverse.
ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

# kwok manages only nodes that carry this annotation, like kwok's own `kwokctl` clusters.
KWOK_ANNOTATION = "kwok.x-k8s.io/node"


@dataclass
class Ports:
    """Loopback ports of one test bed, chosen when it is first created."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


@dataclass
class Layout:
    """Where one test bed keeps its files."""

    root: Path
    ports: Ports
    lease_seconds: int = 40
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def kubeconfig(self, who: str = "admin") -> Path:
        return self.root / ("kubeconfig" if who == "admin" else f"{who}.kubeconfig")


def command(name: str, layout: Layout, tc: build.Toolchain) -> list[str]:
    """The full command line for one component."""
    p, pki, ports = layout.root, layout.pki, layout.ports
    if name == "etcd":
        peer = f"http://127.0.0.1:{ports.etcd_peer}"
        client = f"http://127.0.0.1:{ports.etcd_client}"
        return [
            str(tc.binary("etcd")),
            "--name=testbed",
            f"--data-dir={p / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=testbed={peer}",
            "--quota-backend-bytes=8589934592",
            # Data is on disk and survives any process restart; skipping fsync only risks
            # data on a machine crash, which a throwaway test bed can afford.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
    if name == "kube-apiserver":
        return [
            str(tc.binary("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={network.SERVICES}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            # Thousands of kwok nodes renew Leases; the defaults (400/200) throttle them.
            "--max-requests-inflight=1600",
            "--max-mutating-requests-inflight=800",
            "--profiling=false",
            "--event-ttl=1h",
            # The `kubernetes` Service cannot point at a loopback address; nothing in the
            # test bed reaches the API server through it, so don't keep trying.
            "--endpoint-reconciler-type=none",
            # Every write except kwok's fake-kubelet heartbeats, one JSON line each: tests
            # count API writes by user, verb and resource from it (audit.py).
            f"--audit-policy-file={write_audit_policy(layout)}",
            f"--audit-log-path={layout.logs / 'audit.log'}",
            "--audit-log-format=json",
            "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=1s",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
            f"--cert-dir={pki}",
        ]
    if name in ("kube-controller-manager", "kube-scheduler"):
        who = "controller-manager" if name == "kube-controller-manager" else "scheduler"
        port = ports.controller_manager if who == "controller-manager" else ports.scheduler
        kubeconfig = layout.kubeconfig(who)
        common = [
            str(tc.binary(name)),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={p / who}",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ]
        if who == "scheduler":
            return common
        return [
            *common,
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--allocate-node-cidrs=false",
            "--concurrent-gc-syncs=10",
            f"--node-monitor-grace-period={grace_seconds_for(layout.lease_seconds)}s",
        ]
    if name == "kwok":
        return [
            str(tc.binary("kwok")),
            f"--kubeconfig={layout.kubeconfig('kwok')}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            f"--node-lease-duration-seconds={layout.lease_seconds}",
            f"--server-address=127.0.0.1:{ports.kwok}",
            f"--cidr={network.kwok_cidr()}",
            f"--node-ip={network.KWOK_NODE_IP}",
            # INFO logs a line per Lease renewal: megabytes a minute at 10,000 cars.
            "--v=WARN",
        ]
    raise ValueError(f"unknown component {name!r}")


def lease_seconds_for(cars: int) -> int:
    """kwok's node Lease duration for a fleet size: a kubelet's 40 s up to 2,000 cars.

    kwok renews every duration/4, so 10,000 cars at 40 s would be 1,000 Lease writes per
    second, more than two cores serve; longer Leases keep the write rate near 200/s.
    """
    return max(40, min(240, cars // 50))


def grace_seconds_for(lease_seconds: int) -> int:
    """Node-monitor grace: two missed renewals plus margin (50 s for a 40 s Lease, as upstream)."""
    return max(50, lease_seconds // 2 + 30)


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: [curbside-testbed-kwok, system:kube-scheduler, system:apiserver]
  - level: None
    resources: [{group: coordination.k8s.io, resources: [leases]}]
    namespaces: [kube-node-lease, kube-system]
  - level: None
    resources: [{group: "", resources: [events]}, {group: events.k8s.io, resources: [events]}]
    verbs: [create, update, patch]
    users: [system:kube-controller-manager]
  - level: Request
    resources:
      - {group: curbside.dev, resources: [vehiclenodes, vehiclenodes/status]}
      - {group: "", resources: [nodes]}
    verbs: [create, update, patch]
    users: [curbside-operator]
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"""


def write_audit_policy(layout: Layout) -> Path:
    """The API server's audit policy: writes only, without the fake kubelets' heartbeats."""
    path = layout.root / "audit-policy.yaml"
    path.write_text(AUDIT_POLICY)
    return path


NODE_STAGES = Path(__file__).with_name("kwok-node-stages.yaml")
"""kwok's node stages with a kubelet's 5-minute status report (the file says why)."""


def write_kwok_config(layout: Layout) -> None:
    """kwok's private ~/.kwok/kwok.yaml: more parallel Lease renewals, and ``NODE_STAGES``.

    Without the stages, kwok's default heartbeat would patch every Node's status every 20-45 s.
    64 Lease workers for a big fleet (Leases longer than a kubelet's 40 s): 10,000 cars owe
    200 renewals/s, and with 16 workers kwok fell minutes behind whenever the API server's
    latency rose past 80 ms (903 stale Leases in a full bench). Up to 2,000 cars, 16, as
    before: 64 workers' bursts of Lease writes lifted the 1,000-car visibility test's p99 over
    its 1 s: 1.04 s on a quiet machine, 0.87 s with 16 the same day (0.58 s in an earlier stop).
    Pods likewise: with 8 pod workers kwok finalized about 9 deleted pods/s at 10,000 cars, so
    a job deleted from 6,000 cars held those cars for 11 minutes (a kubelet takes seconds).
    """
    big = layout.lease_seconds > 40
    workers, pod_workers = (64, 32) if big else (16, 8)
    path = layout.root / ".kwok" / "kwok.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\n"
        "kind: KwokConfiguration\n"
        "options:\n"
        f"  nodeLeaseParallelism: {workers}\n"
        "  nodePlayStageParallelism: 8\n"
        f"  podPlayStageParallelism: {pod_workers}\n"
        "---\n" + NODE_STAGES.read_text()
    )


def start(name: str, layout: Layout, tc: build.Toolchain) -> int:
    """Start one component in its own session (it outlives this process); return its pid."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    log = (layout.logs / f"{name}.log").open("ab")
    # kwok always loads ~/.kwok/kwok.yaml when it exists; a private HOME keeps a user's
    # personal kwok stages out of the test bed.
    env = None
    if name == "kwok":
        env = dict(os.environ, HOME=str(layout.root))
        write_kwok_config(layout)
    proc = subprocess.Popen(
        command(name, layout, tc),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=layout.root,
        env=env,
    )
    log.close()
    # Right after a vfork+exec, /proc/<pid>/cmdline can read empty for a moment; wait until
    # it names the binary so `is_ours` (which checks it) is reliable from now on.
    deadline = time.monotonic() + 5
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{proc.pid}/cmdline").read_bytes():
                break
        time.sleep(0.01)
    layout.pids[name] = proc.pid
    return proc.pid


def is_ours(pid: int, layout: Layout) -> bool:
    """True if ``pid`` is alive and is a process of this test bed (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    if stat and stat[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return str(layout.root).encode() in cmdline


def stop(name: str, layout: Layout, *, grace: float = 10.0) -> None:
    """SIGTERM one component, SIGKILL it after ``grace`` seconds, and wait until it is gone."""
    pid = layout.pids.pop(name, None)
    if pid is None or not is_ours(pid, layout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while is_ours(pid, layout):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + grace
        time.sleep(0.05)


def tail(name: str, layout: Layout, lines: int = 20) -> str:
    """The last lines of a component's log, for error messages."""
    try:
        text = (layout.logs / f"{name}.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
