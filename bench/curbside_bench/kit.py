"""The bench's moving parts on one test bed: car roles, scripted cars, the operator, the audit log.

Why this exists: every scenario needs the same few things and must not trip over the others:
which cars are Curbside's and which carry the Kubernetes baseline (``roles``), cars that renew
a Lease and report ``Charging`` the way the agent does (``Cars``), the operator as its own
process with its CPU and memory readable (``Operator``), and the API server's audit log, whose
microsecond ``stageTimestamp`` is the server's own clock for writes (``AuditTail``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from curbside_bench import stats
from curbside_testbed import operator

LEASES = "/apis/coordination.k8s.io/v1/namespaces/curbside-cars/leases"
VN = "/apis/curbside.dev/v1alpha1/vehiclenodes"
IJ = "/apis/curbside.dev/v1alpha1/namespaces/{ns}/inferencejobs"
MERGE = {"Content-Type": "application/merge-patch+json"}
CHARGING = {"state": "Charging", "batteryPercent": 80, "charging": True, "network": "Unmetered"}
DRIVING = {"state": "Driving", "charging": False}
GROUP_LABEL = "bench.curbside.dev/group"
T = TypeVar("T")


class BenchError(RuntimeError):
    """A scenario could not run or broke a correctness invariant; the message says which."""


@dataclass(frozen=True)
class Role:
    """What a car is for in this run: Curbside's, or one of the baseline's four groups."""

    curbside: bool
    group: str = ""  # "single" (scenario 1) or "mass" (scenario 2)
    variant: str = ""  # "default" (300 s tolerations) or "shortest" (tolerationSeconds 0)

    @property
    def label(self) -> str:
        return "curbside" if self.curbside else f"{self.group}-{self.variant}"


def role(index: int) -> Role:
    """Car ``index``'s role: 60 % Curbside, 40 % baseline, every group spread over the zones.

    The test bed puts car i in zone i % 12 (curbside_testbed.fleet). Kubernetes rate-limits
    tainting per zone, so the single departures (zones 0-5) and the mass departure (zones
    6-11) never share a zone's limiter; i % 5 and (i // 60) % 2 are independent of i % 12.
    """
    if index % 5 >= 2:
        return Role(curbside=True)
    return Role(
        curbside=False,
        group="single" if index % 12 < 6 else "mass",
        variant="default" if (index // 60) % 2 == 0 else "shortest",
    )


def car_name(index: int) -> str:
    return f"car-{index:05d}"


def until(what: str, predicate: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Poll until ``predicate`` gives something truthy; BenchError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return value


def until_done_or_stalled(
    what: str, count: Callable[[], int], target: int, *, stall: float, timeout: float, interval: float = 1.0
) -> int:
    """Poll ``count`` until it reaches ``target`` or stops growing for ``stall`` seconds.

    On a loaded machine a few fake kubelets or scripted cars may drop out mid-scenario; the
    figure is then over what did happen (the caller records how many), not a lost run.
    """
    deadline = time.monotonic() + timeout
    best, since = -1, time.monotonic()
    while (now := count()) < target:
        if now > best:
            best, since = now, time.monotonic()
        if time.monotonic() - since > stall:
            print(f"[bench] {what}: stalled at {now} of {target}; going on with those", flush=True)
            return now
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what} ({now} of {target})")
        time.sleep(interval)
    return now


def stamp(at: float | None = None) -> str:
    moment = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pages(
    api: httpx.Client, path: str, *, selector: str = "", limit: int, headers: dict[str, str] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """The items of a list, a page at a time (``limit`` each); raises on an HTTP error."""
    params: dict[str, str | int] = {"limit": limit}
    if selector:
        params["labelSelector"] = selector
    while True:
        r = api.get(path, params=params, headers=headers)
        r.raise_for_status()
        body = r.json()
        yield list(body.get("items") or [])
        if not (cont := body["metadata"].get("continue")):
            return
        params["continue"] = cont


def live_pods(api: httpx.Client, namespace: str, selector: str = "") -> list[dict[str, Any]]:
    """Pods without a deletionTimestamp (paginated: a mass baseline has thousands)."""
    path = f"/api/v1/namespaces/{namespace}/pods"
    return [
        p
        for page in pages(api, path, selector=selector, limit=2000)
        for p in page
        if not p["metadata"].get("deletionTimestamp")
    ]


def scheduled_at(pod: dict[str, Any]) -> float | None:
    """The server's PodScheduled time of a pod, or its creation if born bound (Curbside's)."""
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "True":
            return stats.parse_time(cond["lastTransitionTime"])
    if pod["spec"].get("nodeName"):
        return stats.parse_time(pod["metadata"]["creationTimestamp"])
    return None


class AuditTail:
    """Reads the API server's audit log from a mark on: who wrote what, when (server clock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def read(self) -> list[dict[str, Any]]:
        """Events appended since the last read (a rotated log is read from its start)."""
        out = []
        for raw in self.read_raw().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(raw))
        return out

    def read_raw(self) -> bytes:
        """The whole lines appended since the last read, undecoded (cheap to search)."""
        if not self.path.exists():
            return b""
        if self.path.stat().st_size < self.offset:
            self.offset = 0
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        whole = data[: data.rfind(b"\n") + 1]  # a line still being written: read it next time
        self.offset += len(whole)
        return whole


def audit_time(event: dict[str, Any]) -> float:
    return stats.parse_time(event.get("requestReceivedTimestamp") or event["stageTimestamp"])


def audit_key(event: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """(user, verb, resource[/sub], namespace, name) of an audit event."""
    ref = event.get("objectRef") or {}
    resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    user = (event.get("user") or {}).get("username", "")
    return user, event.get("verb", ""), resource, ref.get("namespace", ""), ref.get("name", "")


class Cars:
    """Curbside's cars played like agents: a Lease renewed every ``period`` s, status on demand.

    Renewals run on an asyncio loop in a thread with bounded concurrency, so thousands of cars
    renew on time; ``silence`` stops a car's renewals (a silent loss), ``resume`` restarts them.
    """

    def __init__(self, base_url: str, ctx: ssl.SSLContext, names: Iterable[str], *, period: float) -> None:
        self.base_url, self.ctx, self.period = base_url, ctx, period
        self.renewing = set(names)
        self.last_renewal: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.late_passes = 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._loop()), daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)

    def silence(self, name: str) -> float:
        """Stop renewing; returns the car's last renewal (when it went silent)."""
        with self.lock:
            self.renewing.discard(name)
            return self.last_renewal.get(name, time.time())

    def resume(self, name: str) -> None:
        with self.lock:
            self.renewing.add(name)

    async def _loop(self) -> None:
        sem = asyncio.Semaphore(32)
        async with httpx.AsyncClient(base_url=self.base_url, verify=self.ctx, timeout=60) as client:

            async def one(name: str) -> None:
                async with sem:
                    now = time.time()
                    spec = {"holderIdentity": name, "leaseDurationSeconds": 30, "renewTime": stamp(now)}
                    r = await client.patch(f"{LEASES}/{name}", json={"spec": spec}, headers=MERGE)
                    if r.status_code == 404:
                        await client.post(LEASES, json={"metadata": {"name": name}, "spec": spec})
                    with self.lock:
                        if name in self.renewing:
                            self.last_renewal[name] = now

            while not self.stop_event.is_set():
                began = time.monotonic()
                with self.lock:
                    names = sorted(self.renewing)
                await asyncio.gather(*(one(n) for n in names), return_exceptions=True)
                took = time.monotonic() - began
                self.late_passes += took > self.period
                await asyncio.to_thread(self.stop_event.wait, max(0.0, self.period - took))


def report(api: httpx.Client, name: str, status: dict[str, Any]) -> float:
    """Patch a car's agent-owned status; returns the observedAt sent (epoch s)."""
    now = time.time()
    body = {"status": {**status, "observedAt": stamp(now)}}
    try:
        r = api.patch(f"{VN}/{name}/status", json=body, headers=MERGE)
    except httpx.TransportError:  # the same patch again is harmless
        time.sleep(0.5)
        r = api.patch(f"{VN}/{name}/status", json=body, headers=MERGE)
    if r.status_code != 200:
        raise BenchError(f"reporting {name}: HTTP {r.status_code}: {r.text[:200]}")
    return now


def report_all(api: httpx.Client, names: list[str], status: dict[str, Any]) -> None:
    """The same report from many cars at once, 16 at a time: one by one, 1,200 reports to a
    busy API server take minutes. Not more: with 32 threads the shared client once closed a
    connection under another thread (``ReadError: Bad file descriptor``)."""
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: report(api, n, status), names))


class Operator(operator.OperatorProcess):
    """The operator as a child process (``curbside_testbed.operator``); ``check`` raises
    ``BenchError`` once it has exited."""

    def __init__(self, *, kubeconfig: Path, work: Path, grace: float, extra_env: dict[str, str]) -> None:
        super().__init__(kubeconfig=kubeconfig, work=work, grace=grace, env=extra_env)

    def check(self) -> None:
        try:
            super().check()
        except operator.OperatorExited as exited:
            raise BenchError(str(exited)) from None


@dataclass
class Ctx:
    """What every scenario gets: the bed's API, its audit log, Curbside's cars and the operator."""

    api: httpx.Client
    audit_log: Path
    cars: Cars
    curbside_cars: list[str]
    operator: Operator
    work: Path
    seed: int
    quick: bool
    poll_s: float = 1.0  # between the bench's own lists: each lists thousands of objects at 10,000 cars
