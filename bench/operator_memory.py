"""What the operator holds in memory per car and per pod, measured offline at fleet scale.

Why this exists: Curbside's target (docs/design.md, Numbers) is at most 250 MB of operator RSS
with 10,000 cars and 10,000 pods, and the full bench (an hour on the 2-core machine) is too
slow a loop for finding where the memory goes. This feeds the operator's own state objects
(``FleetState`` and ``JobState``, the ones its watches feed) with what those watches deliver at
10,000 cars: kwok car Nodes as the test bed makes them, their VehicleNodes as the operator
enrolls them with a car's report and the operator's status, their Leases, and one inference pod
per car as the job loop creates it (kwok's Running status added). No API server is involved;
the figures are the state's own cost, not the transient cost of the watches that fill it.

    .venv/bin/python bench/operator_memory.py --cars 10000 --pods 10000

It prints, per phase, the process's RSS (and with ``--trace`` what ``tracemalloc`` counts as
still allocated), and the cost per object; then the same in a fresh process with the
VehicleNodes held as parsed, without ``api.sharing``: the baseline.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from curbside_api import sharing
from curbside_api.v1alpha1 import inferencejob as ij
from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator import handlers as _handlers  # noqa: F401  (the operator's imports, as it runs)
from curbside_operator import settings
from curbside_operator.controllers.fleet import FleetState
from curbside_operator.controllers.job_state import JobState
from curbside_operator.reconcile import pods, vehiclenode
from curbside_testbed.fleet import car_name, car_node

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, index: int, **extra: Any) -> dict[str, Any]:
    """What the API server adds to every object (managedFields included: watches get them)."""
    return {
        "name": name,
        "uid": f"{index:08x}-0000-4000-8000-{index:012x}",
        "resourceVersion": str(1_000_000 + index),
        "generation": 1,
        "creationTimestamp": stamp(NOW),
        "managedFields": [
            {
                "manager": manager,
                "operation": "Update",
                "apiVersion": "v1",
                "time": stamp(NOW),
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:status": {"f:conditions": {}, "f:phase": {}}},
            }
            for manager in ("curbside-operator", "curbside-agent")
        ],
        **extra,
    }


def node_body(index: int) -> dict[str, Any]:
    body = car_node(index)
    body["metadata"] = {
        **body["metadata"],
        **meta(car_name(index), index),
        "labels": body["metadata"]["labels"],
    }
    body["status"]["conditions"] = [
        {
            "type": kind,
            "status": "True" if kind == "Ready" else "False",
            "reason": f"Kubelet{kind}",
            "message": f"kubelet reports {kind}",
            "lastHeartbeatTime": stamp(NOW),
            "lastTransitionTime": stamp(NOW),
        }
        for kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")
    ]
    body["status"]["addresses"] = [{"type": "InternalIP", "address": f"10.0.{index // 250}.{index % 250}"}]
    return body


def car_body(index: int, node: dict[str, Any]) -> dict[str, Any]:
    labels, annotations = node["metadata"]["labels"], node["metadata"]["annotations"]
    body = vehiclenode.enrollment_body(car_name(index), labels=labels, annotations=annotations)
    assert body is not None
    body["metadata"] = meta(car_name(index), index)
    # What differs between cars in a real fleet differs here too: readings, report times,
    # when each condition last flipped (spread over a day), the units each car holds.
    observed = NOW - timedelta(microseconds=index * 7919)
    body["status"] = {
        "state": "Charging",
        "batteryPercent": 20 + index % 80,
        "charging": True,
        "network": "Unmetered",
        "chargerPowerKw": (7.4, 11.0, 22.0)[index % 3],
        "region": labels["topology.kubernetes.io/region"],
        "thermal": {
            "cabinCelsius": 10 + index % 25,
            "socCelsius": 35 + index % 30,
            "packCelsius": 20 + index % 20,
        },
        "energyUsedTodayKwh": round(index % 97 * 0.013, 3),
        "predictedDeparture": {"time": stamp(NOW + timedelta(minutes=30 + index % 600)), "confidence": 0.8},
        "observedAt": observed.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "operator": {
            "eligible": True,
            "reasons": [],
            "message": "",
            "activeWork": [{"namespace": "bench", "job": "embed", "units": 1 + index % 4}],
        },
        "conditions": [
            {
                "type": kind,
                "status": "True",
                "reason": reason,
                "message": f"{kind}: {reason}",
                "lastTransitionTime": stamp(NOW - timedelta(seconds=(index * 37 + len(kind)) % 86_400)),
                "observedGeneration": 1,
            }
            for kind, reason in (
                ("Reporting", "LeaseFresh"),
                ("Eligible", "AllChecksPass"),
                ("Computing", "UnitsLeased"),
            )
        ],
    }
    return body


def pod_body_for(index: int, job: ij.InferenceJob) -> dict[str, Any]:
    car = car_name(index)
    body = pods.pod_body(
        job,
        car,
        owner=f"owner-{index // 2:05d}",
        dispatcher_url="https://10.0.0.1:8443",
        worker_image="curbside/worker:bench",
    )
    body["metadata"] = {
        **body["metadata"],
        **meta(f"{job.metadata.name}-{car}", index),
        "namespace": job.metadata.namespace,
        "labels": body["metadata"].get("labels", {}),
    }
    body["spec"]["nodeName"] = car
    body["status"] = {
        "phase": "Running",
        "podIP": "10.0.0.1",
        "hostIP": "10.0.0.1",
        "startTime": stamp(NOW),
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": stamp(NOW)}
            for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
    }
    return body


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cars", type=int, default=10_000)
    p.add_argument("--pods", type=int, default=10_000, help="inference pods, one per car (at most --cars)")
    p.add_argument("--trace", action="store_true", help="also count allocations (tracemalloc inflates RSS)")
    p.add_argument(
        "--unshared", action="store_true", help="hold VehicleNodes as parsed (no api.sharing): the baseline"
    )
    p.add_argument("--no-baseline", action="store_true", help="do not run the --unshared baseline after")
    args = p.parse_args()
    print(f"== VehicleNodes {'as parsed (baseline)' if args.unshared else 'as the operator holds them'}")
    if args.trace:
        tracemalloc.start()
    config = settings.OperatorConfig.from_env({})
    fleet, jobs = FleetState(config, clock=lambda: NOW), JobState()
    raw = yaml.safe_load((REPO / "examples" / "06-minilm-embed.yaml").read_text())
    raw["metadata"] = {**raw.get("metadata", {}), "namespace": "bench", "uid": "job-uid", "generation": 1}
    job = ij.InferenceJob.from_body(raw)
    rows: list[tuple[str, int, float, float]] = []

    def measure(phase: str, count: int) -> None:
        gc.collect()
        rows.append((phase, count, rss_mib(), tracemalloc.get_traced_memory()[0] / 2**20))

    measure("imports", 0)
    for i in range(args.cars):
        fleet.node_event("ADDED", car_name(i), node_body(i))
    measure("car Nodes", args.cars)
    for i in range(args.cars):
        if args.unshared:
            fleet.cars[car_name(i)] = vn.VehicleNode.from_body(car_body(i, node_body(i)))
            fleet.enroll.pop(car_name(i), None)
        else:
            fleet.car_event("ADDED", car_name(i), car_body(i, node_body(i)))
    measure("VehicleNodes", args.cars)
    for i in range(args.cars):
        fleet.lease_event("MODIFIED", car_name(i), NOW - timedelta(seconds=i % 10))
    measure("car Leases", args.cars)
    for i in range(min(args.pods, args.cars)):
        jobs.pod_event("ADDED", pod_body_for(i, job))
    measure("inference pods", min(args.pods, args.cars))
    previous_rss, previous_traced = rows[0][2], rows[0][3]
    print(f"{'phase':<16}{'objects':>9}{'RSS MiB':>10}{'traced MiB':>12}{'KiB/object (RSS, traced)':>28}")
    for phase, count, rss, traced in rows:
        per = ""
        if count:
            per = (
                f"{(rss - previous_rss) * 1024 / count:.2f}, {(traced - previous_traced) * 1024 / count:.2f}"
            )
        print(f"{phase:<16}{count:>9}{rss:>10.1f}{traced:>12.1f}{per:>28}")
        previous_rss, previous_traced = rss, traced
    if not args.unshared:
        print(f"distinct fields-sets held: {sharing.shared_sets()}")
        if not args.no_baseline:
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--unshared"], check=True)
    if not args.trace:
        return
    snapshot = tracemalloc.take_snapshot()
    print("\nlargest allocation sites now:")
    for stat in snapshot.statistics("lineno")[:12]:
        print(f"  {stat.size / 2**20:7.1f} MiB  {stat.count:>8} blocks  {stat.traceback[0]}")


if __name__ == "__main__":
    main()
