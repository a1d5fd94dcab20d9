"""The Kubernetes baseline: the same inference pods as a Deployment, moved by Kubernetes itself.

Why this exists: Curbside's figures mean something only next to what a fleet operator gets
without it. Here the pods are a plain Deployment (node affinity to its cars, one accelerator
each, so one pod per car like Curbside's), and a departing car simply stops heart-beating,
as a car that drives off does: the node-lifecycle controller marks it Unknown after the grace
period, taints it (rate-limited per zone), the taint manager evicts its pods when their
toleration runs out, the ReplicaSet controller replaces them and kube-scheduler binds the
replacements. Two variants run side by side: the default tolerations (300 s, added by
admission) and the shortest Kubernetes allows (``tolerationSeconds: 0``).

A car "departs" by taking over its node Lease (kwok then leaves the node alone) and setting
the node's phase to Terminated (kwok's heartbeat stage stops matching). The time of departure
is the car's last sign of life: its last Lease renewal or status heartbeat, whichever is later,
read from the objects the node-lifecycle controller itself reads.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from curbside_api.v1alpha1.inferencejob import DEFAULT_TRITON_IMAGE
from curbside_bench import kit, stats

NAMESPACE = "bench-baseline"
NODE_LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
VARIANTS = ("default", "shortest")


def deployment(name: str, group: str, replicas: int, *, shortest: bool) -> dict[str, Any]:
    """The baseline workload: what Curbside's pod is, as a Deployment pinned to ``group``'s cars."""
    tolerations: list[dict[str, Any]] = [
        {"key": "curbside.dev/vehicle", "operator": "Exists", "effect": "NoSchedule"}
    ]
    if shortest:
        tolerations += [
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}
            for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
        ]
    one = {"curbside.dev/accelerator": "1"}
    term = {"matchExpressions": [{"key": kit.GROUP_LABEL, "operator": "In", "values": [group]}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 10,
                    "tolerations": tolerations,
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
                        }
                    },
                    "containers": [
                        {
                            "name": "tritonserver",
                            "image": DEFAULT_TRITON_IMAGE,
                            "resources": {"requests": one, "limits": one},
                        }
                    ],
                },
            },
        },
    }


@dataclass
class Departure:
    car: str
    silenced: float  # when we cut it off (client clock = the machine's clock, like the server's)
    pods: list[str] = field(default_factory=list)  # the workload's pods on it then


def silence(api: httpx.Client, car: str) -> float:
    """The car stops heart-beating (see the module docstring); returns when."""
    now = time.time()
    # The phase first, while kwok still manages the Node: it then replaces the status heartbeat
    # it had queued for it with a stage that never plays (kwok-node-stages.yaml, node-departed).
    # Once its Lease is taken, kwok ignores the Node's changes.
    r2 = api.patch(f"/api/v1/nodes/{car}/status", json={"status": {"phase": "Terminated"}}, headers=kit.MERGE)
    spec = {"holderIdentity": "departed", "leaseDurationSeconds": 86400, "renewTime": kit.stamp(now)}
    r = api.patch(f"{NODE_LEASES}/{car}", json={"spec": spec}, headers=kit.MERGE)
    if r.status_code != 200 or r2.status_code != 200:
        raise kit.BenchError(f"silencing {car}: HTTP {r.status_code}/{r2.status_code}")
    return now


def last_sign_of_life(api: httpx.Client, dep: Departure, *, before: float) -> float:
    """The later of our cut-off and the node's last status heartbeat (kwok may have one queued).

    A heartbeat after ``before`` (the pod's eviction) delayed no replacement: kwok
    sometimes plays a queued status heartbeat minutes after the cut-off, after Kubernetes
    had already moved the pods; taken as the last sign of life it made reactions negative.
    """
    node = api.get(f"/api/v1/nodes/{dep.car}").json()
    beats = [
        beat
        for c in node.get("status", {}).get("conditions") or []
        if c.get("type") == "Ready"
        and c.get("lastHeartbeatTime")
        and (beat := stats.parse_time(c["lastHeartbeatTime"])) <= before
    ]
    return max([dep.silenced, *beats])


def evicted_at(api: httpx.Client, pod: str) -> float | None:
    """When Kubernetes evicted ``pod`` from a departed car, while the pod is still Terminating
    (its ``deletionTimestamp`` is the eviction plus its grace period); None once it is gone,
    as every one was by the end of a quick run (1,000 cars)."""
    r = api.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}")
    meta = r.json().get("metadata", {}) if r.status_code == 200 else {}
    if not meta.get("deletionTimestamp"):
        return None
    return stats.parse_time(meta["deletionTimestamp"]) - float(meta.get("deletionGracePeriodSeconds") or 0)


class Baseline:
    """Four Deployments (single/mass departures × default/shortest tolerations) on their cars."""

    def __init__(self, api: httpx.Client, groups: dict[str, list[str]], *, seed: int) -> None:
        self.api, self.groups, self.rng = api, groups, random.Random(seed)
        self.replicas = {label: max(1, len(cars) // 2) for label, cars in groups.items()}
        self.departures: dict[str, list[Departure]] = {label: [] for label in groups}
        self.started: dict[str, float] = {}
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def deploy(self, timeout: float) -> None:
        """The four Deployments (their cars carry ``kit.GROUP_LABEL``), all pods bound."""
        self.api.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
        for label in self.groups:
            body = deployment(label, label, self.replicas[label], shortest=label.endswith("shortest"))
            r = self.api.post(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", json=body)
            if r.status_code not in (201, 409):
                raise kit.BenchError(f"creating Deployment {label}: HTTP {r.status_code}: {r.text[:300]}")
        for label in self.groups:

            def bound(label: str = label) -> bool:
                return self._all_bound(label)

            kit.until(f"{self.replicas[label]} pods of {label} bound", bound, timeout, 2.0)

    def _pods(self, label: str) -> list[dict[str, Any]]:
        return kit.live_pods(self.api, NAMESPACE, f"app={label}")

    def _all_bound(self, label: str) -> bool:
        pods = self._pods(label)
        return len(pods) >= self.replicas[label] and all(p["spec"].get("nodeName") for p in pods)

    def start(self, *, singles: int, stagger: float, mass_share: float, mass_window: float) -> None:
        """Departures in a background thread: staggered singles, and the mass within a window."""

        def run() -> None:
            try:
                plan: list[tuple[float, str, str]] = []
                for variant in VARIANTS:
                    busy = self._busy_cars(f"single-{variant}")
                    plan += [(i * stagger, f"single-{variant}", car) for i, car in enumerate(busy[:singles])]
                    mass = f"mass-{variant}"
                    leaving = self.rng.sample(
                        self.groups[mass], max(1, round(mass_share * len(self.groups[mass])))
                    )
                    plan += [(self.rng.uniform(0, mass_window), mass, car) for car in leaving]
                began = time.monotonic()
                for offset, label, car in sorted(plan):
                    time.sleep(max(0.0, began + offset - time.monotonic()))
                    on = [
                        p["metadata"]["name"] for p in self._pods(label) if p["spec"].get("nodeName") == car
                    ]
                    self.started.setdefault(label, time.time())
                    self.departures[label].append(Departure(car, silence(self.api, car), on))
            except BaseException as error:  # reported by collect()
                self.error = error

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def _busy_cars(self, label: str) -> list[str]:
        return sorted({p["spec"]["nodeName"] for p in self._pods(label) if p["spec"].get("nodeName")})

    def _settled(self, label: str) -> list[dict[str, Any]] | None:
        """The workload's pods once every replica is bound to a car that did not leave."""
        gone = {d.car for d in self.departures[label]}
        pods = self._pods(label)
        if len(pods) < self.replicas[label] or any(
            not p["spec"].get("nodeName") or p["spec"]["nodeName"] in gone for p in pods
        ):
            return None
        return pods

    def collect(self, deadline: float) -> dict[str, Any]:
        """Wait (until ``deadline``, monotonic) for every group to settle; the figures per group."""
        assert self.thread is not None
        self.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.error is not None:
            raise kit.BenchError(f"baseline departures failed: {self.error}") from self.error
        out: dict[str, Any] = {}
        for label in self.groups:
            settled = None
            while (settled := self._settled(label)) is None and time.monotonic() < deadline:
                time.sleep(2.0)
            out[label] = self._figures(label, settled)
        return out

    def _figures(self, label: str, settled: list[dict[str, Any]] | None) -> dict[str, Any]:
        deps = self.departures[label]
        first = min((d.silenced for d in deps), default=0.0)
        pods = settled if settled is not None else self._pods(label)
        born = [
            (stats.parse_time(p["metadata"]["creationTimestamp"]), t)
            for p in pods
            if (t := kit.scheduled_at(p)) is not None and t >= first
        ]
        # A pod already gone (no eviction time to read) is paired from its car's departure on.
        # Only a heartbeat before the pod's own eviction can have delayed it: at 10,000 cars kwok
        # played queued heartbeats after the eviction and before other pods moved, and taking
        # those as the last sign of life made reactions negative (down to -945 s).
        seen = {pod: evicted_at(self.api, pod) for d in deps for pod in d.pods}
        evictions = [
            (evicted, last_sign_of_life(self.api, d, before=evicted))
            for d in deps
            for pod in d.pods
            for evicted in [seen[pod] or d.silenced]
        ]
        displaced = sum(len(d.pods) for d in deps)
        latencies, moved = pair(evictions, born)
        figures: dict[str, Any] = {
            "cars": len(self.groups[label]),
            "replicas": self.replicas[label],
            "departures": len(deps),
            "displaced_pods": displaced,
            "replaced": len(moved),
            "evictions_seen": sum(at is not None for at in seen.values()),
            # Pods moved for another reason (kwok's node Leases lagging under load: a blip of
            # NotReady evicts at once with tolerationSeconds 0), not counted above.
            "other_moves": len(born) - len(moved),
            "settled": settled is not None,
            "reaction_s": stats.summary(latencies),
            "reaction_samples_s": latencies,
            "waited_s": time.time() - first,
        }
        if label.startswith("mass") and moved:
            figures["all_replaced_s"] = (max(moved) - first) if settled is not None else None
            last = max(d.silenced for d in deps)
            figures["after_last_left_s"] = (max(moved) - last) if settled is not None else None
            figures["replaced_after_s"] = [t - first for t in moved]
        return figures


def pair(
    evictions: list[tuple[float, float]], pods: list[tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """Each eviction ``(evicted_at, last sign of life)`` with its replacement among ``pods``
    ``(created, bound)``: the earliest pod not yet taken, created at or after the eviction
    (timestamps have whole seconds: 1 s of slack). Returns the reactions (bound − last sign of
    life) and the bound times of the replacements. Pairing the n-th departure with the n-th pod
    bound instead once gave -953 s at 10,000 cars, where kwok's lagging Leases made Kubernetes
    move other pods too."""
    free = sorted(pods)
    reactions, bound = [], []
    for evicted, life in sorted(evictions):
        match = next((i for i, (created, _) in enumerate(free) if created >= evicted - 1.0), None)
        if match is None:
            continue
        _, at = free.pop(match)
        reactions.append(at - life)
        bound.append(at)
    return reactions, sorted(bound)
