"""Simulated cars run real work: the real worker for every inference pod bound to a simulated car.

Why this module exists: kwok marks an inference pod ``Running`` but runs nothing, so on
simulated cars no unit was ever computed, committed or lost to a departure, and the promises
that matter (a result commits exactly once; work moves when a car drives away) went untested
end to end. So the simulator plays its cars' kubelets for Curbside's pods:

- ``follow_pods`` lists and watches pods labelled ``app.kubernetes.io/managed-by=curbside``
  (all namespaces); the ``WorkerPool`` keeps those bound (``nodeName``) to its cars and runs
  one real ``worker.runner.Worker`` thread per pod, configured from the ``worker`` container's
  environment as ``curbside-worker`` reads it, with the simulator's Triton (``worker_config``).
  The pod's projected dispatcher token is requested and kept fresh by ``tokens.PodTokens``
  (kwok has no kubelet to do it), and the worker reads it from the file that writes.
- Pod deleted (or ``deletionTimestamp`` set): graceful stop, like the kubelet's SIGTERM; the
  worker releases its lease and returns.
- Car driving, asleep or vanished (``blocked``): the worker is *killed* mid-unit, as when the
  car's computer loses power. Its ``KillSwitch`` is thrown first, so ``KillableDispatcher``
  refuses every request and ``KillableTriton`` aborts; then its stop event ends the loop.
  Nothing is released or committed afterwards; the attempt stays live until the operator
  fences the car. ``check`` runs on every driver tick, after the tick's events reached the
  cars and before their reports go out, so the kill precedes the ``Driving`` report.
- One Triton serves every car: at most ``max_workers`` run, further pods wait in order. A pod
  whose car cannot work or whose environment is unusable is ``refused``; a worker that ends by
  itself is not restarted (the pod's ``restartPolicy`` is ``Never``).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from typing import Any

import httpx

from curbside_agent import agent, kube
from curbside_sim import cheats, tokens
from curbside_sim.podspec import PodError, ProjectedToken, pod_name, projected_token, worker_config
from curbside_worker import dispatcher as dp
from curbside_worker import runner
from curbside_worker.token import DispatcherToken
from curbside_worker.triton import Aborted, Arrays, TritonClient
from curbside_worker.workloads import catalog

log = logging.getLogger(__name__)
PODS = "/api/v1/pods"
SELECTOR = "app.kubernetes.io/managed-by=curbside"
FINISHED = ("Succeeded", "Failed")


# -- killing a worker -----------------------------------------------------------------------------
class Killed(dp.Fenced):
    """The car killed this worker (a ``Fenced``: the worker drops its unit without a word)."""


class KillSwitch(threading.Event):
    """Thrown (set) once; every ``Killable*`` call checks it first. ``refused``: calls it stopped."""

    reason = ""
    refused = 0

    def throw(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.set()

    def check(self, what: str) -> None:
        if self.is_set():
            self.refused += 1
            raise Killed(f"{what}: the worker was killed ({self.reason})")


class KillableDispatcher(dp.DispatcherClient):
    """A ``DispatcherClient`` that sends nothing once its switch is thrown. ``held``: the units it
    leased and that are not yet completed, released or fenced (unit -> attempt)."""

    def __init__(
        self,
        base_url: str,
        *,
        switch: KillSwitch,
        config: runner.WorkerConfig,
        cheater: cheats.Cheater | None = None,
    ) -> None:
        c, token = config, DispatcherToken(token=config.token or None, path=config.token_file)
        super().__init__(base_url, namespace=c.namespace, name=c.job, car=c.car, owner=c.owner, token=token)
        self.switch = switch
        self.cheater = cheater
        self.held: dict[int, int] = {}

    def complete(self, lease: dp.Lease, *, result: dict[str, Any], output_hash: str) -> dp.CommitReply:
        if self.cheater is not None:  # a lying car changes its result just before it sends it
            result = self.cheater.tell(result, unit=lease.unit)
            output_hash = catalog.output_hash(result)
        return super().complete(lease, result=result, output_hash=output_hash)

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        self.switch.check(path)  # every request passes here: checked at the last moment
        try:
            response = super()._post(path, body)
        except (dp.Fenced, dp.UnknownJob):
            self._settled(path)
            raise
        if path.endswith(("/complete", "/release")):
            self._settled(path)
        return response

    def _settled(self, path: str) -> None:
        if path.startswith("/units/"):
            self.held.pop(int(path.split("/")[2]), None)

    def lease(self) -> dp.Lease | None:
        got = super().lease()
        if got is not None:
            self.held[got.unit] = got.attempt
        return got


class KillableTriton(TritonClient):
    """A ``TritonClient`` whose inference aborts (and never starts) once the switch is thrown."""

    def __init__(self, url: str, switch: KillSwitch) -> None:
        super().__init__(url)
        self.switch = switch

    def infer_batches(
        self,
        model: str,
        batches: Iterable[Arrays],
        *,
        outputs: Sequence[str],
        inflight: int = 2,
        abort: Callable[[], bool] = lambda: False,
    ) -> Arrays:
        if self.switch.is_set():
            raise Aborted("the worker was killed")
        return super().infer_batches(
            model, batches, outputs=outputs, inflight=inflight, abort=lambda: self.switch.is_set() or abort()
        )


# -- the pool --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Totals:
    """What the pool's workers did (the simulator's summary line shows these)."""

    started: int = 0
    killed: int = 0
    stopped: int = 0
    exited: int = 0
    refused: int = 0
    abandoned: int = 0
    committed: int = 0


@dataclasses.dataclass(eq=False)
class Run:
    """One pod's worker: its thread, stop event and kill switch, and how it ended."""

    uid: str
    pod: str
    config: runner.WorkerConfig
    make_triton: Callable[[str, KillSwitch], TritonClient]
    cheater: cheats.Cheater | None = None
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    switch: KillSwitch = dataclasses.field(default_factory=KillSwitch)
    worker: runner.Worker | None = None
    code: int | None = None
    projected: ProjectedToken | None = None
    tokens: tokens.PodTokens | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._main, name=f"worker {self.pod}", daemon=True)

    def _main(self) -> None:
        config = self.config
        try:
            if self.projected is not None and self.tokens is not None:  # as the kubelet mounts it
                config = dataclasses.replace(config, token_file=str(self.tokens.start(self.projected)))
            dispatcher = KillableDispatcher(
                config.dispatcher_url, switch=self.switch, config=config, cheater=self.cheater
            )
            triton = self.make_triton(config.triton_url, self.switch)
            self.worker = runner.Worker(config, stop=self.stop, dispatcher=dispatcher, triton=triton)
            self.code = self.worker.run()
        except tokens.TokenError as error:  # e.g. the pod was deleted before its token was made
            log.warning("worker of pod %s not started: %s", self.pod, error)
            self.code = -1
        except Exception:
            log.exception("worker of pod %s failed", self.pod)
            self.code = -1
        finally:
            if self.worker is not None:
                self.worker.close()
            if self.projected is not None and self.tokens is not None:
                self.tokens.stop(self.projected.uid)

    @property
    def held(self) -> dict[int, int]:
        client = None if self.worker is None else self.worker.dispatcher
        return dict(client.held) if isinstance(client, KillableDispatcher) else {}


class WorkerPool:
    """The workers of the pods on ``cars``; ``blocked(car)`` says why a car cannot work (None: it can).

    Not thread-safe: call ``pod_event``, ``sync``, ``check`` and ``close`` from one thread (the
    simulator's event loop). ``say`` gets one line per worker started, stopped, killed or ended.
    """

    def __init__(
        self,
        *,
        cars: Container[str],
        blocked: Callable[[str], str | None],
        triton_url: str,
        max_workers: int = 8,
        say: Callable[[str], None] = log.info,
        make_triton: Callable[[str, KillSwitch], TritonClient] = KillableTriton,
        cheaters: Mapping[str, cheats.Cheater] | None = None,
        pod_tokens: tokens.PodTokens | None = None,
    ) -> None:
        self.cars, self.blocked, self.triton_url, self.make_triton = cars, blocked, triton_url, make_triton
        self.cheaters = dict(cheaters or {})
        """Car -> how it lies (``sim.cheats``); the other cars are honest."""
        self.pod_tokens = pod_tokens
        self.max_workers, self.say = max_workers, say
        self.totals = Totals()
        self.running: dict[str, Run] = {}
        self.waiting: collections.OrderedDict[str, Run] = collections.OrderedDict()
        self.seen: set[str] = set()

    def pod_event(self, kind: str, pod: Mapping[str, Any]) -> None:
        """A watch event (``ADDED``, ``MODIFIED``, ``DELETED``) for one pod."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            self._stop(uid, "pod deleted")
        elif (
            uid not in self.seen
            and (pod.get("spec") or {}).get("nodeName") in self.cars
            and (pod.get("status") or {}).get("phase") not in FINISHED
        ):
            self.seen.add(uid)
            try:
                config = worker_config(pod, triton_url=self.triton_url)
                projected = None if config.token else projected_token(pod)
                if projected is not None and self.pod_tokens is None:
                    raise PodError(
                        f"pod {pod_name(pod)}: its token is projected, and no PodTokens project it"
                    )
            except PodError as error:
                self.totals.refused += 1
                self.say(f"[sim] worker refused: {error}")
                return
            self.waiting[uid] = Run(
                uid=uid,
                pod=pod_name(pod),
                config=config,
                make_triton=self.make_triton,
                cheater=self.cheaters.get(config.car),
                projected=projected,
                tokens=self.pod_tokens,
            )
        self.check()

    def sync(self, pods: list[dict[str, Any]]) -> None:
        """A fresh list of every pod: what is gone was deleted while nobody watched."""
        present = {str((pod.get("metadata") or {}).get("uid", "")) for pod in pods}
        self.seen &= present
        for uid in [*self.running, *self.waiting]:
            if uid not in present:
                self._stop(uid, "pod deleted")
        for pod in pods:
            self.pod_event("ADDED", pod)

    def _stop(self, uid: str, why: str) -> None:
        if self.waiting.pop(uid, None) is not None:
            return
        run = self.running.get(uid)
        if run is not None and not run.stop.is_set():
            run.stop.set()  # graceful: the worker releases what it holds and returns
            self.totals.stopped += 1
            self.say(f"[sim] worker {run.pod} on {run.config.car}: stopping ({why})")

    def kill(self, run: Run, why: str) -> None:
        """Kill ``run``'s worker mid-unit: the switch first (nothing is sent any more), then stop."""
        if run.switch.is_set():
            return
        run.switch.throw(why)
        run.stop.set()
        self.totals.killed += 1
        units = ", ".join(f"unit {u} attempt {a}" for u, a in sorted(run.held.items())) or "no unit"
        self.say(f"[sim] worker {run.pod} on {run.config.car}: killed ({why}) holding {units}")

    def check(self) -> None:
        """Kill the workers of cars that cannot work, reap ended ones, start waiting ones."""
        for uid, run in list(self.running.items()):
            if not run.thread.is_alive():
                del self.running[uid]
                self._ended(run)
            elif (why := self.blocked(run.config.car)) is not None:
                self.kill(run, why)
        while self.waiting and len(self.running) < self.max_workers:
            uid, run = self.waiting.popitem(last=False)
            if (why := self.blocked(run.config.car)) is not None:
                self.totals.refused += 1
                self.say(f"[sim] worker {run.pod} on {run.config.car}: not started ({why})")
                continue
            self.running[uid] = run
            run.thread.start()
            self.totals.started += 1
            self.say(f"[sim] worker {run.pod} on {run.config.car}: started")

    def _ended(self, run: Run) -> None:
        stats = run.worker.stats if run.worker is not None else runner.Stats()
        self.totals.committed += stats.committed
        if run.switch.is_set():
            self.totals.abandoned += len(run.held)  # left live in the ledger until the car is fenced
        if not (run.switch.is_set() or run.stop.is_set()):
            self.totals.exited += 1
            self.say(f"[sim] worker {run.pod} on {run.config.car}: exited {run.code}")

    def committed(self) -> int:
        """Units committed by every worker so far, running ones included."""
        live = sum(run.worker.stats.committed for run in self.running.values() if run.worker is not None)
        return self.totals.committed + live

    def summary(self) -> str:
        """``workers R waiting W started S killed K ... committed C``, for the simulator's summary line."""
        counts = {"workers": len(self.running), "waiting": len(self.waiting), **vars(self.totals)}
        return " ".join(f"{key} {value}" for key, value in {**counts, "committed": self.committed()}.items())

    def close(self, *, timeout: float = 15.0) -> None:
        """Stop every worker gracefully (the simulation ends, the cars do not leave) and wait."""
        self.waiting.clear()
        for uid in list(self.running):
            self._stop(uid, "simulator stopping")
        give_up = time.monotonic() + timeout
        for run in self.running.values():
            run.thread.join(max(0.0, give_up - time.monotonic()))
        self.check()
        if self.pod_tokens is not None:  # the pool owns them: no more refreshes, files removed
            self.pod_tokens.close()


# -- following pods --------------------------------------------------------------------------------
class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


async def _watch(api: kube.Api, pool: WorkerPool, version: str, *, timeout_s: int) -> str:
    params = {"watch": "1", "labelSelector": SELECTOR, "resourceVersion": version}
    params |= {"allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_s)}
    async with api.client.stream("GET", PODS, params=params, timeout=timeout_s + 30) as response:
        if response.status_code == 410:
            raise _Gone()
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            pod = event.get("object") or {}
            if event.get("type") == "ERROR":
                raise _Gone() if pod.get("code") == 410 else RuntimeError(pod.get("message"))
            version = (pod.get("metadata") or {}).get("resourceVersion") or version
            if event["type"] != "BOOKMARK":
                pool.pod_event(event["type"], pod)
    return version


async def follow_pods(api: kube.Api, pool: WorkerPool, *, retry_s: float = 1.0, timeout_s: int = 60) -> None:
    """List, then watch, Curbside's pods into ``pool`` until cancelled; relist after any failure."""
    while True:
        try:
            listed = await api.request("GET", PODS, params={"labelSelector": SELECTOR})
            pool.sync(listed.get("items") or [])
            version = str((listed.get("metadata") or {}).get("resourceVersion", ""))
            while True:
                version = await _watch(api, pool, version, timeout_s=timeout_s)
        except _Gone:
            continue
        except (agent.ReportError, httpx.HTTPError, ValueError, RuntimeError) as error:
            log.warning("following pods failed (%s); listing again in %.0fs", error, retry_s)
        await asyncio.sleep(retry_s)
