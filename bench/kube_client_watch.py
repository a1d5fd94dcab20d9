"""Part 3 of bench/kube_client.py: each client's list and watch of car Nodes on an API server.

Why this is a module of its own: the other parts need no API server and no client beyond the
one being measured; this one needs ``KUBECONFIG`` (a test bed), a TLS context, a burst of
patches from a separate process and a watcher per client. bench/kube_client.py runs it, each
client in a fresh process (``--child watch``, ``--child patch``), and prints its table.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kube_client import BENCH_LABEL, HERE, PAGE, VEHICLE, WATCHERS, child, peak_rss_mib, rss_mib


def kubeconfig() -> tuple[str, ssl.SSLContext]:
    """The server and a TLS context from ``KUBECONFIG``'s current context (certificate files or
    data; client certificates only: what the test bed writes)."""
    import yaml

    cfg = yaml.safe_load(Path(os.environ["KUBECONFIG"].split(os.pathsep)[0]).read_text())
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])

    def path(entry: dict[str, Any], key: str) -> str:
        if key in entry:
            return str(entry[key])
        import base64

        f = tempfile.NamedTemporaryFile("wb", delete=False, suffix=".pem")  # noqa: SIM115
        f.write(base64.b64decode(entry[f"{key}-data"]))
        f.close()
        return f.name

    tls = ssl.create_default_context(cafile=path(cluster, "certificate-authority"))
    tls.load_cert_chain(path(user, "client-certificate"), path(user, "client-key"))
    return str(cluster["server"]), tls


def current_version() -> str:
    import httpx

    server, tls = kubeconfig()
    with httpx.Client(base_url=server, verify=tls) as http:
        r = http.get("/api/v1/nodes", params={"limit": 1, "labelSelector": f"{VEHICLE}=true"})
        r.raise_for_status()
        return str(r.json()["metadata"]["resourceVersion"])


def patch_burst(token: str, count: int) -> dict[str, Any]:
    """Label ``count`` car Nodes with ``token``, 16 patches in flight (raw httpx)."""
    import httpx

    from curbside_testbed.fleet import car_name

    server, tls = kubeconfig()
    body = json.dumps({"metadata": {"labels": {BENCH_LABEL: token}}})

    async def run() -> None:
        sem = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=server, verify=tls, timeout=60) as http:

            async def one(i: int) -> None:
                async with sem:
                    r = await http.patch(
                        f"/api/v1/nodes/{car_name(i)}",
                        content=body,
                        headers={"Content-Type": "application/merge-patch+json"},
                    )
                    r.raise_for_status()

            await asyncio.gather(*(one(i) for i in range(count)))

    start = time.perf_counter()
    asyncio.run(run())
    return {"patch_s": time.perf_counter() - start}


class Watcher:
    """One client's list and watch of car Nodes; each yields (name, value of BENCH_LABEL)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.loop = asyncio.new_event_loop()
        self.setup()

    def setup(self) -> None:
        if self.kind == "httpx raw":
            import httpx

            server, tls = kubeconfig()
            self.http = httpx.AsyncClient(base_url=server, verify=tls, timeout=httpx.Timeout(60, read=120))
        elif self.kind == "lightkube generic (operator)":
            from lightkube import AsyncClient
            from lightkube.generic_resource import create_global_resource

            self.lk_async = AsyncClient()
            self.raw_node = create_global_resource("", "v1", "Node", "nodes")
        elif self.kind == "lightkube typed":
            from lightkube import Client
            from lightkube.resources.core_v1 import Node

            self.lk = Client()
            self.node = Node
        elif self.kind == "kubernetes":
            from kubernetes import client, config

            config.load_kube_config()
            self.v1 = client.CoreV1Api()
        elif self.kind == "kubernetes.aio":
            from kubernetes.aio import client as aclient
            from kubernetes.aio import config as aconfig

            self.loop.run_until_complete(aconfig.load_kube_config())
            self.aapi = aclient.ApiClient()
            self.av1 = aclient.CoreV1Api(self.aapi)
        else:
            raise SystemExit(f"unknown watcher {self.kind!r}")

    def list_names(self) -> int:
        """List every car Node, a page at a time, decoding each as the client does."""
        selector = f"{VEHICLE}=true"
        if self.kind == "httpx raw":

            async def raw() -> int:
                n, cont = 0, None
                while True:
                    params: dict[str, Any] = {"labelSelector": selector, "limit": PAGE}
                    if cont:
                        params["continue"] = cont
                    r = await self.http.get("/api/v1/nodes", params=params)
                    r.raise_for_status()
                    page = json.loads(r.content)
                    n += sum(1 for obj in page["items"] if obj["metadata"]["name"])
                    cont = page["metadata"].get("continue")
                    if not cont:
                        return n

            return self.loop.run_until_complete(raw())
        if self.kind == "lightkube generic (operator)":

            async def generic() -> int:
                listing = self.lk_async.list(self.raw_node, labels={VEHICLE: "true"}, chunk_size=PAGE)
                return sum([1 async for obj in listing if obj["metadata"]["name"]])

            return self.loop.run_until_complete(generic())
        if self.kind == "lightkube typed":
            listing = self.lk.list(self.node, labels={VEHICLE: "true"}, chunk_size=PAGE)
            return sum(1 for obj in listing if obj.metadata and obj.metadata.name)
        if self.kind == "kubernetes":
            n, cont = 0, None
            while True:
                page = self.v1.list_node(label_selector=selector, limit=PAGE, _continue=cont)
                n += sum(1 for obj in page.items if obj.metadata.name)
                cont = page.metadata.var_continue
                if not cont:
                    return n

        async def aio() -> int:
            n, cont = 0, None
            while True:
                page = await self.av1.list_node(label_selector=selector, limit=PAGE, _continue=cont)
                n += sum(1 for obj in page.items if obj.metadata.name)
                cont = page.metadata.var_continue
                if not cont:
                    return n

        return self.loop.run_until_complete(aio())

    def watch_until(self, version: str, token: str, count: int) -> int:
        """Watch car Nodes from ``version`` until ``count`` of them carry label value ``token``;
        returns the events received."""
        seen: set[str] = set()
        events = 0

        def take(name: str, value: str | None) -> bool:
            nonlocal events
            events += 1
            if value == token:
                seen.add(name)
            return len(seen) >= count

        selector = f"{VEHICLE}=true"
        if self.kind == "httpx raw":

            async def raw() -> None:
                params = {"watch": "1", "labelSelector": selector, "resourceVersion": version}
                async with self.http.stream("GET", "/api/v1/nodes", params=params) as r:
                    r.raise_for_status()
                    async for line in r.aiter_lines():
                        ev = json.loads(line)
                        if ev["type"] == "ERROR":
                            raise RuntimeError(ev["object"].get("message"))
                        meta = ev["object"]["metadata"]
                        if take(meta["name"], (meta.get("labels") or {}).get(BENCH_LABEL)):
                            return

            self.loop.run_until_complete(raw())
        elif self.kind == "lightkube generic (operator)":

            async def generic() -> None:
                stream = self.lk_async.watch(
                    self.raw_node, labels={VEHICLE: "true"}, resource_version=version
                )
                async for _, obj in stream:
                    meta = obj["metadata"]
                    if take(meta["name"], (meta.get("labels") or {}).get(BENCH_LABEL)):
                        await stream.aclose()
                        return

            self.loop.run_until_complete(generic())
        elif self.kind == "lightkube typed":
            stream = self.lk.watch(self.node, labels={VEHICLE: "true"}, resource_version=version)
            for _, obj in stream:
                assert obj.metadata is not None
                if take(str(obj.metadata.name), (obj.metadata.labels or {}).get(BENCH_LABEL)):
                    stream.close()
                    break
        elif self.kind == "kubernetes":
            from kubernetes import watch

            w = watch.Watch()
            for ev in w.stream(
                self.v1.list_node, label_selector=selector, resource_version=version, timeout_seconds=300
            ):
                meta = ev["object"].metadata
                if take(meta.name, (meta.labels or {}).get(BENCH_LABEL)):
                    w.stop()
                    break
        else:
            from kubernetes.aio import watch as awatch

            async def aio() -> None:
                w = awatch.Watch()
                try:
                    async for ev in w.stream(
                        self.av1.list_node,
                        label_selector=selector,
                        resource_version=version,
                        timeout_seconds=300,
                    ):
                        meta = ev["object"].metadata
                        if take(meta.name, (meta.labels or {}).get(BENCH_LABEL)):
                            w.stop()
                            return
                finally:
                    await w.close()

            self.loop.run_until_complete(aio())
        return events


def watch_child(kind: str, burst: int, runs: int) -> dict[str, Any]:
    """In this (fresh) process: list, live watch of a burst, replays; times and peak RSS."""
    watcher = Watcher(kind)
    watcher.list_names()  # connect, warm up
    gc.collect()
    base = rss_mib()
    list_s: list[float] = []
    list_cpu: list[float] = []
    listed = 0
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        listed = watcher.list_names()
        list_s.append(time.perf_counter() - start)
        list_cpu.append(time.process_time() - cpu)
    token = f"r{os.getpid()}-{int(time.time())}"
    version = current_version()
    start = time.perf_counter()
    patcher = subprocess.Popen(
        [sys.executable, str(HERE), "--child", "patch", token, str(burst)], stdout=subprocess.PIPE, text=True
    )
    live_events = watcher.watch_until(version, token, burst)
    live_s = time.perf_counter() - start
    out, _ = patcher.communicate(timeout=300)
    patch_s = float(json.loads(out.strip().splitlines()[-1])["patch_s"])
    replay_s: list[float] = []
    replay_cpu: list[float] = []
    events = 0
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        events = watcher.watch_until(version, token, burst)
        replay_s.append(time.perf_counter() - start)
        replay_cpu.append(time.process_time() - cpu)
    return {
        "listed": listed,
        "list_s": statistics.median(list_s),
        "list_cpu_s": statistics.median(list_cpu),
        "live_s": live_s,
        "live_events": live_events,
        "patch_s": patch_s,
        "replay_s": statistics.median(replay_s),
        "replay_cpu_s": statistics.median(replay_cpu),
        "replay_events": events,
        "peak_rss_mib": peak_rss_mib() - base,
    }


def bench_watch(burst: int, runs: int) -> None:
    print(f"\n== list + watch of car Nodes against {kubeconfig()[0]} (fresh process each, median of {runs})")
    print("(CPU µs: the client process's own CPU time per Node listed or event received)")
    print(
        f"{'client':<30}{'list s':>8}{'Nodes/s':>9}{'CPU µs':>8}{'patch s':>9}{'live s':>8}"
        f"{'replay s':>10}{'events/s':>10}{'CPU µs':>8}{'peak +MiB':>11}"
    )
    for kind in WATCHERS:
        try:
            r = child("--child", "watch", kind, str(burst), str(runs))
        except subprocess.CalledProcessError as exc:
            errors = [line for line in exc.stderr.splitlines() if "Error" in line or "Exception" in line]
            print(f"{kind:<30} failed: {(errors or exc.stderr.splitlines())[-1:]}", flush=True)
            continue
        print(
            f"{kind:<30}{r['list_s']:>8.2f}{r['listed'] / r['list_s']:>9.0f}"
            f"{r['list_cpu_s'] * 1e6 / r['listed']:>8.0f}{r['patch_s']:>9.2f}{r['live_s']:>8.2f}"
            f"{r['replay_s']:>10.2f}{r['replay_events'] / r['replay_s']:>10.0f}"
            f"{r['replay_cpu_s'] * 1e6 / r['replay_events']:>8.0f}{r['peak_rss_mib']:>11.1f}",
            flush=True,
        )
