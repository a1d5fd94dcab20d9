"""The official ``kubernetes`` client against what the operator uses (lightkube, raw httpx), measured.

Why this exists: the operator talks to the API server with lightkube (over httpx2) and plain
dicts, not with the official ``kubernetes`` package, and docs/operator.md gives memory as the
reason. docs/adr/0003-kubernetes-client.md records the choice; this script produces its
figures, so the choice can be checked again when either client changes. It asserts nothing.

Three parts, each in fresh processes so one client's imports and caches never count for
another:

1. **imports**: wall and CPU time of the client's imports (median of ``--runs`` processes)
   and the process's RSS right after them.
2. **holding objects**: ``--count`` kwok-shaped car Nodes and as many inference pods (bodies
   from bench/operator_memory.py: managedFields, conditions, addresses, capacity; the pod as
   ``reconcile.pods`` makes it, Running), decoded from JSON text the way each client does it
   and held: RSS growth after ``gc.collect()`` and the CPU time spent decoding (CPU, not wall
   time: the machine is shared, and wall time there mostly measures the neighbours).
3. **list + watch** (only with ``KUBECONFIG`` set, e.g. a test bed; in
   bench/kube_client_watch.py): for each client a
   paginated list of the car Nodes (500 a page, as ``kube.watch`` does), then a burst of label
   patches on ``--burst`` car Nodes applied by a separate process while the client watches from
   the resourceVersion before the burst ("live": bounded by the API server), then the same
   watch replayed from the API server's watch cache ("replay": bounded by the client).

    .venv/bin/curbside testbed up --name adr --cars 2000
    eval "$(.venv/bin/curbside testbed env --name adr)"
    .venv/bin/python bench/kube_client.py            # add --no-watch to skip part 3
    .venv/bin/curbside testbed down --name adr
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
VEHICLE = "curbside.dev/vehicle"
BENCH_LABEL = "curbside.dev/adr-bench"
PAGE = 500

IMPORTS: dict[str, str] = {
    "python alone": "pass",
    "httpx (raw)": "import httpx",
    "lightkube (the operator's)": (
        "import lightkube; from lightkube import AsyncClient; "
        "from lightkube.generic_resource import create_global_resource; "
        "from lightkube.resources.core_v1 import Node, Pod"
    ),
    "kubernetes": "import kubernetes; from kubernetes import client, config, watch",
    "kubernetes.aio": "import kubernetes.aio; from kubernetes.aio import client, config, watch",
}

DECODERS = (
    "dict (json.loads)",
    "lightkube generic (operator)",
    "lightkube typed (msgspec)",
    "kubernetes V1Node/V1Pod",
)

WATCHERS = ("httpx raw", "lightkube generic (operator)", "lightkube typed", "kubernetes", "kubernetes.aio")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(*args: str, timeout: float = 600) -> dict[str, Any]:
    """Run this script in a fresh process; its last stdout line is a JSON object."""
    out = subprocess.run(
        [sys.executable, str(HERE), *args], check=True, capture_output=True, text=True, timeout=timeout
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- 1. imports -------------------------------------------------------------------------------


def import_once(statement: str) -> tuple[float, float, float]:
    """Wall and CPU seconds to run ``statement`` first thing in a fresh interpreter, and the
    RSS (MiB) after it."""
    code = (
        "import time\nt0, c0 = time.perf_counter(), time.process_time()\n"
        f"{statement}\n"
        "t1, c1 = time.perf_counter(), time.process_time()\n"
        "rss = [l for l in open('/proc/self/status') if l.startswith('VmRSS:')][0].split()[1]\n"
        "print(t1 - t0, c1 - c0, int(rss) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    seconds, cpu, rss = out.stdout.split()
    return float(seconds), float(cpu), float(rss)


def bench_imports(runs: int) -> None:
    print(f"\n== imports (fresh interpreter each, median of {runs})")
    print(f"{'client':<30}{'import ms':>11}{'CPU ms':>8}{'RSS MiB':>10}")
    for name, statement in IMPORTS.items():
        import_once(statement)  # warm the page cache and the .pyc files
        samples = [import_once(statement) for _ in range(runs)]
        seconds = statistics.median(s for s, _, _ in samples)
        cpu = statistics.median(c for _, c, _ in samples)
        rss = statistics.median(r for _, _, r in samples)
        print(f"{name:<30}{seconds * 1000:>11.0f}{cpu * 1000:>8.0f}{rss:>10.1f}", flush=True)


# -- 2. holding objects -----------------------------------------------------------------------


def write_bodies(count: int, folder: Path) -> tuple[Path, Path, float, float]:
    """``count`` Node and pod bodies, one JSON text a line; and their mean size in bytes."""
    sys.path.insert(0, str(HERE.parent))
    from datetime import timedelta

    import yaml

    import operator_memory as om
    from curbside_api.v1alpha1 import inferencejob as ij

    raw = yaml.safe_load((om.REPO / "examples" / "06-minilm-embed.yaml").read_text())
    raw["metadata"] = {**raw.get("metadata", {}), "namespace": "bench", "uid": "job-uid", "generation": 1}
    job = ij.InferenceJob.from_body(raw)
    nodes, pods = folder / "nodes.jsonl", folder / "pods.jsonl"
    node_bytes = pod_bytes = 0
    with nodes.open("w") as nf, pods.open("w") as pf:
        for i in range(count):
            node = om.node_body(i)
            # What kwok and the API server add to a car Node besides what the test bed creates
            # (NodeSystemInfo's fields are never omitted: empty strings where kwok has none).
            node["status"]["nodeInfo"].update(bootID="", machineID="", systemUUID="", kubeProxyVersion="kwok")
            node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": 0}}
            node["status"]["phase"] = "Running"
            line = json.dumps(node, separators=(",", ":"))
            node_bytes += len(line)
            nf.write(line + "\n")
            pod = om.pod_body_for(i, job)
            pod["status"]["containerStatuses"] = [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": om.stamp(om.NOW + timedelta(seconds=i % 60))}},
                }
                for c in pod["spec"]["containers"]
            ]
            line = json.dumps(pod, separators=(",", ":"))
            pod_bytes += len(line)
            pf.write(line + "\n")
    return nodes, pods, node_bytes / count, pod_bytes / count


def decoders(variant: str) -> tuple[Callable[[bytes], Any], Callable[[bytes], Any]]:
    """(decode a Node's JSON text, decode a pod's) as the client in ``variant`` does it."""
    if variant == "dict (json.loads)":
        return json.loads, json.loads
    if variant.startswith("lightkube"):
        # lightkube 1.x decodes a body with msgspec straight from bytes: into its typed
        # msgspec Structs, or into a dict that a generic resource (a dict subclass) wraps.
        from lightkube.core.decoders import decode_object
        from lightkube.generic_resource import create_global_resource, create_namespaced_resource
        from lightkube.resources.core_v1 import Node, Pod

        node_type: Any = Node
        pod_type: Any = Pod
        if variant == "lightkube generic (operator)":
            node_type = create_global_resource("", "v1", "Node", "nodes")
            pod_type = create_namespaced_resource("", "v1", "Pod", "pods")
        return (lambda t: decode_object(t, node_type)), (lambda t: decode_object(t, pod_type))
    if variant == "kubernetes V1Node/V1Pod":
        from kubernetes import client

        api = client.ApiClient()
        # What CoreV1Api does with a response body (and Watch with each event's object).
        return (
            (lambda t: api.deserialize(t.decode(), "V1Node", "application/json")),
            (lambda t: api.deserialize(t.decode(), "V1Pod", "application/json")),
        )
    raise SystemExit(f"unknown decoder {variant!r}")


def hold(variant: str, nodes: Path, pods: Path) -> dict[str, Any]:
    """In this (fresh) process: decode and keep every Node and pod; RSS growth and decode time."""
    decode_node, decode_pod = decoders(variant)
    with nodes.open("rb") as nf, pods.open("rb") as pf:
        warm = decode_node(nf.readline()), decode_pod(pf.readline())  # build lazy caches first
    del warm
    gc.collect()
    before = rss_mib()
    held: list[Any] = []
    seconds = 0.0
    for path, decode in ((nodes, decode_node), (pods, decode_pod)):
        with path.open("rb") as f:
            for line in f:
                start = time.process_time()
                obj = decode(line)
                seconds += time.process_time() - start
                held.append(obj)
    gc.collect()
    return {"objects": len(held), "rss_mib": rss_mib() - before, "decode_s": seconds}


def bench_holding(count: int) -> None:
    print(f"\n== holding {count} car Nodes and {count} inference pods (fresh process each)")
    with tempfile.TemporaryDirectory() as tmp:
        nodes, pods, node_size, pod_size = write_bodies(count, Path(tmp))
        print(f"JSON per object: Node {node_size / 1024:.1f} KiB, pod {pod_size / 1024:.1f} KiB")
        print(f"{'representation':<32}{'RSS MiB':>9}{'KiB/object':>12}{'decode CPU s':>14}{'µs/object':>11}")
        for variant in DECODERS:
            r = child("--child", "hold", variant, str(nodes), str(pods))
            n = r["objects"]
            print(
                f"{variant:<32}{r['rss_mib']:>9.1f}{r['rss_mib'] * 1024 / n:>12.2f}"
                f"{r['decode_s']:>14.2f}{r['decode_s'] * 1e6 / n:>11.0f}",
                flush=True,
            )


def children(argv: list[str]) -> Iterator[str]:
    """Run one child task (``--child WHAT ARGS...``) and yield its JSON result line."""
    what, *rest = argv
    if what == "hold":
        yield json.dumps(hold(rest[0], Path(rest[1]), Path(rest[2])))
    elif what == "watch":
        import kube_client_watch as kw

        yield json.dumps(kw.watch_child(rest[0], int(rest[1]), int(rest[2])))
    elif what == "patch":
        import kube_client_watch as kw

        yield json.dumps(kw.patch_burst(rest[0], int(rest[1])))
    else:
        raise SystemExit(f"unknown child task {what!r}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        for line in children(sys.argv[2:]):
            print(line)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=7, help="import timings per client (median)")
    p.add_argument("--count", type=int, default=10_000, help="Nodes, and as many pods, to hold")
    p.add_argument("--burst", type=int, default=1000, help="car Nodes to label in the watch burst")
    p.add_argument("--watch-runs", type=int, default=3, help="lists and replays per client (median)")
    p.add_argument("--no-imports", action="store_true")
    p.add_argument("--no-hold", action="store_true")
    p.add_argument("--no-watch", action="store_true", help="skip part 3 (also skipped without KUBECONFIG)")
    args = p.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    if not args.no_imports:
        bench_imports(args.runs)
    if not args.no_hold:
        bench_holding(args.count)
    if not args.no_watch and os.environ.get("KUBECONFIG"):
        import kube_client_watch as kw

        kw.bench_watch(args.burst, args.watch_runs)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
