"""Placement and departure handling at fleet scale: placements per second, departures, memory.

Why this exists: the cluster tests prove behaviour at CI size; this measures it at 1,000 cars
on a real control plane: how fast the operator places a job's pods, how long an announced
departure takes to become a replacement pod bound to another car, and the operator's memory.
Cars are scripted (a Lease each, renewed every ``--renew`` seconds, and one ``Charging``
report); no worker runs, so every unit stays pending and the job keeps wanting cars.

    .venv/bin/python bench/jobs_at_scale.py --cars 1000 --departures 50

It prints one line of figures. The load average is printed too: on a shared 2-core machine
the API server next to 1,000 fake kubelets is the bottleneck.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from curbside_testbed import bed

REPO = Path(__file__).resolve().parents[1]
LEASES = "/apis/coordination.k8s.io/v1/namespaces/curbside-cars/leases"
VN = "/apis/curbside.dev/v1alpha1/vehiclenodes"
MERGE = {"Content-Type": "application/merge-patch+json"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _until(what: str, predicate: Any, timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)
    return value


def _renew_once(api: httpx.Client, names: list[str]) -> None:
    """One renewal of every car's Lease, eight at a time: one after another, 1,000 renewals on a
    loaded API server take longer than the grace period, and the fleet would look partitioned."""

    def one(name: str) -> None:
        spec = {"holderIdentity": name, "leaseDurationSeconds": 30, "renewTime": _stamp()}
        r = api.patch(f"{LEASES}/{name}", json={"spec": spec}, headers=MERGE)
        if r.status_code == 404:
            api.post(LEASES, json={"metadata": {"name": name}, "spec": spec})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, names))


def _renew(api: httpx.Client, names: list[str], stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        _renew_once(api, names)


def _pods(api: httpx.Client, namespace: str) -> dict[str, str]:
    items = api.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"]
    return {
        p["metadata"]["name"]: p["spec"]["nodeName"]
        for p in items
        if not p["metadata"].get("deletionTimestamp")
    }


def _rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cars", type=int, default=1000)
    p.add_argument("--departures", type=int, default=50)
    p.add_argument("--renew", type=float, default=20.0, help="seconds between a car's Lease renewals")
    p.add_argument("--keep", action="store_true", help="leave the test bed up")
    args = p.parse_args()
    tb, work = bed.TestBed("bench-jobs"), Path(tempfile.mkdtemp(prefix="curbside-bench-"))
    tb.up(cars=args.cars, timeout=1800)
    stop, operator = threading.Event(), None
    try:
        subprocess.run(
            ["kubectl", "apply", "-f", str(REPO / "crds")],
            check=True,
            env={**os.environ, "KUBECONFIG": str(tb.kubeconfig)},
            stdout=subprocess.DEVNULL,
        )
        api = tb.http(timeout=120)
        api.post("/api/v1/namespaces", json={"metadata": {"name": "curbside-cars"}})
        api.post("/api/v1/namespaces", json={"metadata": {"name": "bench"}})
        names = [f"car-{i:05d}" for i in range(args.cars)]
        _renew_once(api, names)  # every car alive before the operator first looks
        threading.Thread(
            target=_renew, args=(tb.http(timeout=60), names, stop, args.renew), daemon=True
        ).start()
        dport, mport = _port(), _port()
        env = dict(
            os.environ,
            KUBECONFIG=str(tb.kubeconfig_for("curbside-operator", groups=("system:masters",))),
            CURBSIDE_CAR_LEASE_GRACE_SECONDS=str(args.renew * 3),
            CURBSIDE_LEDGER_PATH=str(work / "ledger.sqlite3"),
            CURBSIDE_DISPATCHER_HOST="127.0.0.1",
            CURBSIDE_DISPATCHER_PORT=str(dport),
            CURBSIDE_DISPATCHER_URL=f"http://127.0.0.1:{dport}",
            CURBSIDE_METRICS_PORT=str(mport),
            CURBSIDE_EXPECTED_UNIT_SECONDS="30",
        )
        log = (work / "operator.log").open("wb")
        operator = subprocess.Popen(
            [sys.executable, "-m", "curbside_operator"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _until("every car enrolled", lambda: len(api.get(VN).json().get("items", [])) >= args.cars, 600, 1.0)
        charging = {"state": "Charging", "batteryPercent": 80, "charging": True, "network": "Unmetered"}
        for name in names:
            api.patch(
                f"{VN}/{name}/status", json={"status": {**charging, "observedAt": _stamp()}}, headers=MERGE
            )

        def eligible() -> int:
            cars = api.get(VN).json()["items"]
            return sum(bool((v["status"].get("operator") or {}).get("eligible")) for v in cars)

        _until("95 % of cars eligible", lambda: eligible() >= 0.95 * args.cars, 900, 2.0)

        want = args.cars // 2
        job = {
            "apiVersion": "curbside.dev/v1alpha1",
            "kind": "InferenceJob",
            "metadata": {"name": "bench"},
            "spec": {
                "model": {"name": "seti-spike-search"},
                "input": {"generated": {"units": want * 10}},
                "output": {"uri": (work / "results").as_uri()},
                "placement": {"maxCars": want},
            },
        }
        t0 = time.monotonic()
        assert (
            api.post("/apis/curbside.dev/v1alpha1/namespaces/bench/inferencejobs", json=job).status_code
            == 201
        )
        _until(f"{want} pods", lambda: len(_pods(api, "bench")) >= want, 900, 0.2)
        placed_s = time.monotonic() - t0

        gone_ms, bound_ms = [], []
        for _ in range(args.departures):
            before = _pods(api, "bench")
            pod, car = next(iter(before.items()))
            t = time.monotonic()
            api.patch(
                f"{VN}/{car}/status",
                json={"status": {"state": "Driving", "charging": False, "observedAt": _stamp()}},
                headers=MERGE,
            )
            _until("the pod gone", lambda pod=pod: pod not in _pods(api, "bench"), 60, 0.02)
            gone_ms.append((time.monotonic() - t) * 1000)
            _until("a replacement", lambda before=before: set(_pods(api, "bench")) - set(before), 60, 0.02)
            bound_ms.append((time.monotonic() - t) * 1000)
        rss, peak = _rss_mib(operator.pid)

        def pct(xs: list[float], q: float) -> float:
            return sorted(xs)[round(q * (len(xs) - 1))]

        print(
            f"cars={args.cars} placed {want} pods in {placed_s:.1f}s ({want / placed_s:.0f} placements/s); "
            f"{args.departures} announced departures: pod gone p50 {statistics.median(gone_ms):.0f} ms "
            f"p99 {pct(gone_ms, 0.99):.0f} ms, replacement bound p50 {statistics.median(bound_ms):.0f} ms "
            f"p99 {pct(bound_ms, 0.99):.0f} ms; operator RSS {rss:.0f} MiB (peak {peak:.0f}); "
            f"load {os.getloadavg()[0]:.1f}"
        )
    finally:
        stop.set()
        if operator is not None:
            operator.terminate()
            operator.wait(timeout=30)
        if not args.keep:
            tb.down()


if __name__ == "__main__":
    main()
