"""Simulated cars run real work: the simulator runs the real worker for pods on its cars, against
a real Triton and the operator's own dispatcher, and kills it mid-unit when the car drives away.

The dispatcher (SQLite ledger, folder result store) is served by this process on loopback, as
the operator serves it, with two seti-spike-search jobs: ``quick`` (small units) and ``slow``
(units of about 8 s, so a worker can be caught mid-unit on purpose). A PyTriton server serves
the model; ``curbside sim --triton-url`` runs 20 cars from a seed and start the test chose by
replaying the same mobility traces: one car (the *leaver*) drives off about 30 s after the
simulated clock starts, two others stay parked throughout. Pods are made as the operator makes
them (bound by ``nodeName``, the worker configured by ``CURBSIDE_*`` values, its identity a
projected token that the simulator requests bound to the pod; the dispatcher checks it with a
real TokenReview against the test bed, as the operator does).

It shows, through the ledger (every call recorded with the car that made it):

1. every car with a ``quick`` pod commits units;
2. deleting a pod whose worker holds a ``slow`` unit releases that unit at once (graceful);
3. the leaver's ``slow`` worker, leased a few seconds before the departure, is killed mid-unit:
   it never releases or completes, and its attempt is still live when the test fences the car
   (as the operator does on a departure).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube import AsyncClient, KubeConfig

from curbside_agent import state
from curbside_api.v1alpha1 import inferencejob
from curbside_operator.dispatch import auth, results
from curbside_operator.dispatch.server import Dispatcher
from curbside_operator.dispatch.sqlite_ledger import SqliteLedger
from curbside_operator.handlers.startup import token_reviewer
from curbside_operator.reconcile import placement, pods
from curbside_sim import mobility
from curbside_testbed import bed, serve
from curbside_worker.workloads import seti
from tests.support import wait
from tests.support.agent import SIMULATOR_USER
from tests.support.loopback import LoopbackApp, free_port

CARS, SEED, SPEED, BATTERY_STEP = 20, 1, 25.0, 5.0
LEAD_S, WINDOW_S = 30.0, 60.0
"""The leaver departs about ``LEAD_S`` wall seconds after the clock starts; stayers stay ``WINDOW_S``."""
QUICK = {"channels": "512", "timeSteps": "256", "maxDrift": "16", "signalsPerUnit": "1"}
SLOW = {"channels": "512", "timeSteps": "256", "maxDrift": "200", "signalsPerUnit": "0"}
MAY_WORK = {state.CarState.PARKED.value, state.CarState.CHARGING.value}


@dataclasses.dataclass(frozen=True)
class Plan:
    start: datetime
    leaver: str
    departs_after_s: float
    stayers: tuple[str, str]


def plan() -> Plan:
    """A start at which car ``leaver`` may work until it drives off ``LEAD_S`` (±4) wall seconds in,
    and two cars may work for ``WINDOW_S``: the simulator's own mobility traces, replayed."""
    base = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
    for minutes in range(0, 240, 2):
        start = base + timedelta(minutes=minutes)
        fleet = mobility.Fleet(cars=CARS, seed=SEED, start=start, battery_step_percent=BATTERY_STEP)
        seen: dict[int, list[tuple[float, str]]] = {car: [] for car in range(CARS)}
        for event in fleet.advance(start) + fleet.advance(start + timedelta(seconds=WINDOW_S * SPEED)):
            now = "vanished" if event.reading is None else state.car_state(event.reading).value
            seen[event.car].append(((event.at - start).total_seconds() / SPEED, now))
        stayers = [car for car, states in seen.items() if all(now in MAY_WORK for _, now in states)]
        for car, states in seen.items():
            first = next((k for k, (_, now) in enumerate(states) if now not in MAY_WORK), None)
            if first and states[first][1] == "Driving" and abs(states[first][0] - LEAD_S) <= 4:
                return Plan(
                    start=start,
                    leaver=f"car-{car:05d}",
                    departs_after_s=states[first][0],
                    stayers=(f"car-{stayers[0]:05d}", f"car-{stayers[1]:05d}"),
                )
    raise AssertionError("no start with a departure at the right moment: mobility changed, adjust the knobs")


class RecordingLedger(SqliteLedger):
    """The ledger, noting every lease, completion and release: (wall time, kind, job, unit, attempt, car)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, durable=False)
        self.calls: list[tuple[float, str, str, int, int, str]] = []

    def lease(self, job: str, **kwargs: Any) -> Any:
        got = super().lease(job, **kwargs)
        if got is not None:
            self.calls.append((time.time(), "lease", job, got.unit, got.attempt, kwargs["car"]))
        return got

    def complete(self, job: str, unit: int, attempt: int, **kwargs: Any) -> Any:
        done = super().complete(job, unit, attempt, **kwargs)
        self.calls.append((time.time(), "complete", job, unit, attempt, kwargs["car"]))
        return done

    def release(self, job: str, unit: int, attempt: int, **kwargs: Any) -> bool:
        released = super().release(job, unit, attempt, **kwargs)
        self.calls.append(
            (time.time(), "release" if released else "release-late", job, unit, attempt, kwargs["car"])
        )
        return released

    def of(self, kind: str, *, job: str | None = None, car: str | None = None) -> list[tuple[Any, ...]]:
        return [c for c in list(self.calls) if c[1] == kind and job in (None, c[2]) and car in (None, c[5])]


def reviews(kubeconfig: Path) -> auth.Review:
    """TokenReviews by the test bed's API server, through the operator's own code (a client made
    on first use, in the dispatcher's event loop)."""
    made: list[auth.Review] = []

    async def review(token: str, audiences: Any) -> Any:
        if not made:
            made.append(token_reviewer(AsyncClient(config=KubeConfig.from_file(kubeconfig))))
        return await made[0](token, audiences)

    return review


class Served:
    """The operator's dispatcher on a loopback port (aiohttp in a thread)."""

    def __init__(self, tmp_path: Path, kubeconfig: Path) -> None:
        self.store = results.FolderResultStore(tmp_path / "results", fsync=False)
        self.ledger = RecordingLedger(tmp_path / "ledger.db")
        self.tokens = auth.TokenReviewAuthenticator(reviews(kubeconfig), audience=pods.DISPATCHER_AUDIENCE)
        self.dispatcher = Dispatcher(
            self.ledger, authenticator=self.tokens, pod_name=placement.pod_name, stores=lambda uri: self.store
        )
        self.server = LoopbackApp(self.dispatcher.app())
        self.url = self.server.url

    def register(
        self, namespace: str, name: str, *, units: int, items: int, parameters: dict[str, str]
    ) -> str:
        spec = inferencejob.InferenceJobSpec.model_validate(
            {
                "model": {"name": seti.MODEL_NAME},
                "input": {
                    "generated": {"seed": 7, "units": units, "itemsPerUnit": items, "parameters": parameters}
                },
                "output": {"uri": "file:///unused"},
            }
        )
        return self.dispatcher.register_job(namespace, name, f"uid-{name}", spec)

    def close(self) -> None:
        self.server.close()
        self.dispatcher.close()
        assert self.ledger.verify() == []
        self.ledger.close()


@pytest.fixture(scope="module")
def seti_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[serve.ServerProcess]:
    """PyTriton with seti-spike-search only (a few seconds to start: no MiniLM to load)."""
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    server = serve.ServerProcess.pytriton(
        [seti.MODEL_NAME],
        grpc_port=free_port(),
        http_port=free_port(),
        extra_args=["--exit-timeout=1", f"--log-file={log}", "--max-queue-delay-us=1000"],
    )
    server.start(timeout=240)
    yield server
    server.stop()


@pytest.fixture
def served(tmp_path: Path, testbed: bed.TestBed) -> Iterator[Served]:
    dispatcher = Served(tmp_path, testbed.kubeconfig)
    yield dispatcher
    dispatcher.close()


def pod_body(namespace: str, job: str, car: str, *, served: Served, env: dict[str, str]) -> dict[str, Any]:
    """An inference pod as the operator makes it: bound to the car, the worker set by CURBSIDE_*,
    its identity the projected token of ``reconcile.pods``."""
    values = {
        "CURBSIDE_DISPATCHER_URL": served.url,
        "CURBSIDE_JOB_NAMESPACE": namespace,
        "CURBSIDE_JOB_NAME": job,
        "CURBSIDE_CAR": car,
        "CURBSIDE_OWNER": f"owner-of-{car}",
        "CURBSIDE_TOKEN_FILE": pods.TOKEN_FILE,
        "CURBSIDE_TRITON_URL": "127.0.0.1:8001",
        "CURBSIDE_MODEL": seti.MODEL_NAME,
        **env,
    }
    labels = {"app.kubernetes.io/managed-by": "curbside", "curbside.dev/job": job, "curbside.dev/car": car}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": placement.pod_name(job, car), "namespace": namespace, "labels": labels},
        "spec": {
            "nodeName": car,
            "restartPolicy": "Never",
            "tolerations": [{"key": "curbside.dev/vehicle", "operator": "Exists"}],
            "containers": [
                {"name": "tritonserver", "image": inferencejob.DEFAULT_TRITON_IMAGE},
                {
                    "name": "worker",
                    "image": "curbside/worker:dev",
                    "env": [{"name": name, "value": value} for name, value in values.items()],
                    "volumeMounts": [pods.TOKEN_MOUNT],
                },
            ],
            "volumes": [pods.token_volume()],
        },
    }


def test_simulated_cars_run_real_work_and_a_departure_kills_it(
    testbed: bed.TestBed,
    api: httpx.Client,
    crds: Any,
    namespace: str,
    served: Served,
    seti_triton: serve.ServerProcess,
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    chosen = plan()
    leaver, (stayer, deleted) = chosen.leaver, chosen.stayers
    quick = served.register(namespace, "quick", units=60, items=4, parameters=QUICK)
    slow = served.register(namespace, "slow", units=4, items=16, parameters=SLOW)
    slow_env = {"CURBSIDE_BATCH_SIZE": "1", "CURBSIDE_INFLIGHT": "1"}  # aborted quickly, little waste

    wait.until(  # the pods' ServiceAccount, made by the controller-manager
        lambda: api.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default").status_code == 200,
        timeout=30,
        what="the namespace's default ServiceAccount",
    )

    def create(job: str, car: str, key: str, env: dict[str, str]) -> None:
        body = pod_body(namespace, job, car, served=served, env=env)
        r = api.post(f"/api/v1/namespaces/{namespace}/pods", json=body)
        assert r.status_code == 201, r.text

    for car in (leaver, stayer, deleted):
        create("quick", car, quick, {"CURBSIDE_BATCH_SIZE": "2"})

    kubeconfig = testbed.kubeconfig_for(SIMULATOR_USER, groups=("system:masters",))
    clock_file, log = tmp_path / "clock.json", tmp_path / "sim.log"
    argv = [sys.executable, "-m", "curbside_sim.runner", "--cars", str(CARS), "--seed", str(SEED)]
    argv += [
        "--start",
        chosen.start.isoformat(),
        "--speed",
        f"{SPEED:g}",
        "--battery-step",
        f"{BATTERY_STEP:g}",
    ]
    argv += [
        "--duration",
        f"{WINDOW_S * SPEED:.0f}s",
        "--kubeconfig",
        str(kubeconfig),
        "--clock-file",
        str(clock_file),
    ]
    argv += ["--triton-url", seti_triton.grpc_url, "--report-seconds", "5"]
    with log.open("wb") as out:
        sim = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait.until(
            lambda: clock_file.exists() or sim.poll() is not None, timeout=120, what="the fleet running"
        )
        assert clock_file.exists(), log.read_text()[-3000:]
        departs_at = float(json.loads(clock_file.read_text())["wall0"]) + chosen.departs_after_s
        calls = served.ledger

        # 1. Every car with a quick pod commits units (the leaver well before it leaves).
        def committed() -> dict[str, int]:
            return {car: len(calls.of("complete", job=quick, car=car)) for car in (leaver, stayer, deleted)}

        wait.until(
            lambda: all(committed().values()), timeout=departs_at - time.time() - 8, what="commits by all 3"
        )

        # 2. A deleted pod's worker releases the unit it holds, at once.
        create("slow", deleted, slow, slow_env)
        held = wait.until(
            lambda: calls.of("lease", job=slow, car=deleted), timeout=10, what="a slow unit leased"
        )
        r = api.delete(
            f"/api/v1/namespaces/{namespace}/pods/slow-{deleted}", params={"gracePeriodSeconds": 0}
        )
        assert r.status_code == 200, r.text
        released = wait.until(
            lambda: calls.of("release", job=slow, car=deleted), timeout=15, what="a release"
        )
        assert [c[3:5] for c in released] == [c[3:5] for c in held]
        assert not [a for a in served.ledger.live(slow) if a.car == deleted]
        assert not calls.of("complete", job=slow, car=deleted)

        # 3. The leaver's slow worker, leased shortly before the departure, is killed mid-unit.
        wait.until(lambda: time.time() >= departs_at - 3.5, timeout=60, what="3.5 s before the departure")
        create("slow", leaver, slow, slow_env)
        taken = wait.until(
            lambda: calls.of("lease", job=slow, car=leaver), timeout=10, what="the leaver's lease"
        )
        assert (
            time.time() < departs_at
        ), "the leaver's slow unit was leased only after it left: too slow a box?"
        (_, _, _, unit, attempt, _) = taken[0]
        wait.until(
            lambda: f"slow-{leaver} on {leaver}: killed (Driving) holding unit {unit} attempt {attempt}"
            in log.read_text(),
            timeout=30,
            what="the leaver's slow worker killed holding its unit",
        )
        wait.until(
            lambda: f"quick-{leaver} on {leaver}: killed (Driving)" in log.read_text(),
            timeout=10,
            what="kill",
        )
        killed_at = time.time()
        assert [(a.unit, a.attempt) for a in served.ledger.live(slow) if a.car == leaver] == [(unit, attempt)]
        # What the operator does on a departure: fence the car's attempts, then delete its pods.
        fenced = served.ledger.fence_car(None, leaver, now=datetime.now(UTC))
        assert (unit, attempt) in {(ended.unit, ended.attempt) for ended in fenced}
        for job in ("quick", "slow"):
            api.delete(
                f"/api/v1/namespaces/{namespace}/pods/{job}-{leaver}", params={"gracePeriodSeconds": 0}
            )
        assert not calls.of("release", car=leaver)
        assert not calls.of("release-late", car=leaver)
        assert not [c for c in calls.of("complete", car=leaver) if c[0] > killed_at]
        assert not calls.of("complete", job=slow)
    finally:
        wait.terminate(sim)
    output = log.read_text()
    print("\n" + output[-3000:])
    assert sim.returncode == 0, output[-3000:]
    final = [line for line in output.splitlines() if line.startswith("[sim] workers ")][-1]
    print(f"committed by car: {committed()}; {final}; {time.monotonic() - began:.0f}s in all")
    words = final.removeprefix("[sim] ").split()
    totals = {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}
    assert totals["started"] == 5  # quick on 3 cars, slow on 2
    assert totals["killed"] == 2  # both of the leaver's workers
    assert totals["abandoned"] >= 1  # the slow unit, and the quick one if it held one
    assert totals["committed"] == sum(committed().values())
    assert totals["refused"] == 0
    assert 5 <= served.tokens.reviews <= 10  # one TokenReview per pod's token, then the cache
