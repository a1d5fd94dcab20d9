"""The operator runs InferenceJobs: placement, departures, completion, failure and deletion.

The operator alone, against the real API server: cars are scripted
(``Cars``), workers are played over the dispatcher's HTTP API with the tokens their pods ask
for (pod-bound, from the TokenRequest API), so each step is checked where it happens. Each
test uses its own cars.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from curbside_testbed.operator import OperatorProcess
from tests.support import wait
from tests.support.figures import Figure
from tests.support.fleet import Cars, bring_up
from tests.support.jobs import (
    PlayedWorker,
    condition,
    job_body,
    jobs_path,
    placed_pods,
    pods,
)

OPERATOR_ENV = {"CURBSIDE_EXPECTED_UNIT_SECONDS": "30", "CURBSIDE_STATUS_INTERVAL_SECONDS": "0.5"}


def _cars(first: int, n: int) -> list[str]:
    return [f"car-{i:05d}" for i in range(first, first + n)]


def _apply(api: httpx.Client, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post(jobs_path(namespace), json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _job(api: httpx.Client, namespace: str, name: str) -> dict[str, Any]:
    r = api.get(f"{jobs_path(namespace)}/{name}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _events(api: httpx.Client, namespace: str, name: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/namespaces/{namespace}/events")
    return [e for e in r.json()["items"] if e["involvedObject"]["name"] == name]


def test_job_gets_one_pod_per_eligible_car_with_a_deterministic_name(
    api: httpx.Client, namespace: str, operator: OperatorProcess, cars: Cars
) -> None:
    live = _cars(100, 3)
    bring_up(api, cars, live)
    job = _apply(api, namespace, job_body("place", units=6, placement={"maxCars": 3}))
    found = placed_pods(api, namespace, "place", 3)
    assert sorted(p["spec"]["nodeName"] for p in found) == live  # only Ready, eligible cars
    for pod in found:
        car = pod["spec"]["nodeName"]
        assert pod["metadata"]["name"] == f"place-{car}"
        owner = pod["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "InferenceJob",
            job["metadata"]["uid"],
            True,
        )
        keys = {t["key"] for t in pod["spec"]["tolerations"]}
        assert {"curbside.dev/vehicle", "curbside.dev/driving"} <= keys
        assert pod["metadata"]["labels"]["curbside.dev/car"] == car
    status = wait.until(
        lambda: _job(api, namespace, "place").get("status", {}).get("units"),
        timeout=30,
        what="status summary",
    )
    assert (status["total"], status["pending"]) == (6, 6)
    assert "curbside.dev/job-cleanup" in _job(api, namespace, "place")["metadata"]["finalizers"]


def test_departure_fences_the_car_first_and_its_late_result_is_refused(
    api: httpx.Client, namespace: str, operator: OperatorProcess, cars: Cars, figure: Figure
) -> None:
    live = _cars(110, 3)
    bring_up(api, cars, live)
    _apply(api, namespace, job_body("depart", units=6, placement={"maxCars": 2}))
    placed = placed_pods(api, namespace, "depart", 2)
    worker = PlayedWorker(placed[0], api)
    r = worker.lease()
    assert r.status_code == 200, r.text
    unit, attempt = r.json()["unit"], r.json()["attempt"]

    left = time.monotonic()
    cars.report(worker.car, state="Driving", charging=False)
    wait.until(
        lambda: worker.car not in {p["spec"]["nodeName"] for p in pods(api, namespace, "depart")},
        timeout=60,
        what="the driving car's pod deleted",
    )
    reaction = time.monotonic() - left
    late = worker.complete(unit, attempt, {"late": True})
    # Refused either by the ledger (the attempt was fenced before the pod was deleted) or, once
    # the dispatcher has seen the pod's deletion, by authentication (its token died with it).
    assert (late.status_code, late.json()["error"]) in {(409, "Fenced"), (401, "Unauthorized")}, late.text
    first = {p["spec"]["nodeName"] for p in placed}  # any other free eligible car may take over
    replacement = wait.until(
        lambda: next((p for p in pods(api, namespace, "depart") if p["spec"]["nodeName"] not in first), None),
        timeout=60,
        what="a replacement pod on another car",
    )
    replaced = time.monotonic() - left
    figure(
        "departure",
        f"pod deleted after {reaction * 1000:.0f} ms, replacement created after {replaced * 1000:.0f} ms",
    )
    # The unit went back to pending at once: the replacement car's worker gets it.
    other = PlayedWorker(replacement, api)
    got = other.lease().json()
    assert (got["unit"], got["attempt"]) == (unit, attempt + 1)
    assert (
        wait.until(
            lambda: _job(api, namespace, "depart").get("status", {}).get("departuresHandled"),
            timeout=10,
            what="departure counted",
        )
        >= 1
    )


def test_job_succeeds_when_every_unit_is_committed_and_its_pods_go(
    api: httpx.Client, namespace: str, operator: OperatorProcess, cars: Cars
) -> None:
    live = _cars(120, 2)
    bring_up(api, cars, live)
    _apply(api, namespace, job_body("finish", units=5, placement={"maxCars": 2}))
    placed = placed_pods(api, namespace, "finish", 2)
    workers = [PlayedWorker(p, api) for p in placed]
    committed = 0
    while committed < 5:
        for w in workers:
            r = w.lease()
            if r.status_code == 200:
                lease = r.json()
                done = w.complete(lease["unit"], lease["attempt"], {"unit": lease["unit"]})
                assert done.status_code == 200, done.text
                committed += 1
    obj = wait.until(
        lambda: condition(j := _job(api, namespace, "finish"), "Succeeded").get("status") == "True" and j,
        timeout=30,
        what="Succeeded",
    )
    assert (obj["status"]["completedUnits"], obj["status"]["progress"]) == ("0-4", "100%")
    assert condition(obj, "Succeeded")["reason"] == "Completed"
    wait.until(
        lambda: pods(api, namespace, "finish") == [], timeout=30, what="pods of a finished job deleted"
    )


def test_invalid_jobs_fail_with_a_reason_and_an_event(
    api: httpx.Client, namespace: str, operator: OperatorProcess
) -> None:
    bad = {
        "no-model": ({"model": {"name": "no-such-model"}}, "ModelNotFound", "spec.model.name"),
        "no-split": (
            {"input": {"dataset": {"uri": "s3://bucket/items.txt"}}},
            "UnsplittableInput",
            "spec.input",
        ),
        "no-store": ({"output": {"uri": "s3://bucket/results"}}, "UnsupportedOutput", "spec.output.uri"),
    }
    for name, (spec, _, _) in bad.items():
        _apply(api, namespace, job_body(name, **spec))
    for name, (_, reason, field) in bad.items():
        failed = wait.until(
            lambda n=name: condition(_job(api, namespace, n), "Failed"), timeout=30, what=name
        )
        assert (failed["status"], failed["reason"]) == ("True", reason), failed
        assert field in failed["message"], failed
        wait.until(
            lambda n=name, r=reason: any(
                e["reason"] == r and e["type"] == "Warning" for e in _events(api, namespace, n)
            ),
            timeout=10,
            what=f"{name}'s Event",
        )
        assert pods(api, namespace, name) == []
    assert operator.proc is not None
    assert operator.proc.poll() is None


def test_a_job_no_car_can_run_says_why(api: httpx.Client, namespace: str, operator: OperatorProcess) -> None:
    _apply(api, namespace, job_body("nowhere", placement={"accelerators": ["tpu-v9"]}))
    succeeded = wait.until(
        lambda: condition(_job(api, namespace, "nowhere"), "Succeeded"), timeout=30, what="a condition"
    )
    wait.until(
        lambda: condition(_job(api, namespace, "nowhere"), "Succeeded").get("reason") == "WaitingForCars",
        timeout=30,
        what=f"WaitingForCars (got {succeeded})",
    )
    message = condition(_job(api, namespace, "nowhere"), "Succeeded")["message"]
    assert "cars placed" in message, message
    assert "NotReady" in message or "WrongAccelerator" in message, message
    assert any(e["reason"] == "WaitingForCars" for e in _events(api, namespace, "nowhere"))


def test_delete_removes_pods_and_stops_leases_even_while_the_operator_is_down(
    api: httpx.Client, namespace: str, operator: OperatorProcess, cars: Cars
) -> None:
    live = _cars(130, 2)
    bring_up(api, cars, live)
    _apply(api, namespace, job_body("gone", units=4, placement={"maxCars": 1}))
    _apply(api, namespace, job_body("gone-later", units=4, placement={"maxCars": 1}))
    first = wait.until(lambda: pods(api, namespace, "gone"), timeout=30, what="a pod of gone")
    later = wait.until(lambda: pods(api, namespace, "gone-later"), timeout=30, what="a pod of gone-later")
    worker = PlayedWorker(first[0], api)
    assert worker.lease().status_code == 200

    assert api.delete(f"{jobs_path(namespace)}/gone").status_code == 200
    wait.until(
        lambda: api.get(f"{jobs_path(namespace)}/gone").status_code == 404, timeout=30, what="gone deleted"
    )
    wait.until(lambda: pods(api, namespace, "gone") == [], timeout=30, what="its pod deleted")
    assert worker.lease().status_code == 404  # the dispatcher no longer serves it

    operator.kill()
    try:
        assert api.delete(f"{jobs_path(namespace)}/gone-later").status_code == 200
        held = _job(api, namespace, "gone-later")  # our finalizer holds it until we are back
        assert held["metadata"].get("deletionTimestamp")
    finally:
        operator.start(wait=60)
    wait.until(
        lambda: api.get(f"{jobs_path(namespace)}/gone-later").status_code == 404,
        timeout=60,
        what="gone-later finished deleting after the restart",
    )
    wait.until(lambda: pods(api, namespace, "gone-later") == [], timeout=30, what="its pod deleted")
    assert later  # it had a pod to clean up
