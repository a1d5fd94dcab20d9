"""``curbside agent``: flags, exit codes, and one car's whole loop against a fake API server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from curbside_agent import cli, credentials, kube
from curbside_agent.signals import sources

REPO = Path(__file__).resolve().parents[3]
CAR = yaml.safe_load((REPO / "examples" / "01-vehiclenode.yaml").read_text())
READING = {"timestamp": "2025-03-07T12:00:00Z", "gear": "P", "batteryPercent": 80, "network": "unmetered"}


def test_sources_from_flags(tmp_path: Path) -> None:
    assert isinstance(cli.source(f"file:{tmp_path}/car.json"), sources.FileSource)
    assert isinstance(cli.source("http://127.0.0.1:8081/car"), sources.HttpSource)
    with pytest.raises(ValueError, match="use file:PATH or an http"):
        cli.source("/dev/ttyUSB0")


def test_bad_flags_exit_2() -> None:
    assert cli.main(["--source", "file:x"]) == 2  # no --vehicle


def test_unusable_credentials_exit_1(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    code = cli.main(
        [
            "--vehicle",
            "car-00001",
            "--source",
            "file:x",
            "--kubeconfig",
            str(tmp_path / "none"),
            "--metrics-port",
            "0",
        ]
    )
    assert code == 1
    assert "cannot read kubeconfig" in caplog.text


def test_reported_status_keeps_only_the_agent_fields() -> None:
    body = {
        "status": {"state": "Parked", "batteryPercent": 60, "operator": {"eligible": True}, "conditions": []}
    }
    assert cli.reported_status(body) == {"state": "Parked", "batteryPercent": 60}
    assert cli.reported_status({}) is None


class FakeApi:
    """Serves the car's VehicleNode and records writes; ``seen`` fires on the first status patch."""

    def __init__(self, body: dict[str, Any] | None) -> None:
        self.body = body
        self.writes: list[tuple[str, str, Any]] = []
        self.seen = asyncio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return (
                httpx.Response(200, json=self.body)
                if self.body
                else httpx.Response(404, json={"message": "nope"})
            )
        self.writes.append((request.method, request.url.path, json.loads(request.content)))
        if request.url.path.endswith("/status"):
            self.seen.set()
        return httpx.Response(200, json={})


def _args(tmp_path: Path, *extra: str) -> Any:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://api.test"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    flags = [
        "--vehicle",
        "car-00001",
        "--source",
        f"file:{tmp_path / 'car.json'}",
        "--kubeconfig",
        str(kubeconfig),
    ]
    return cli.parser().parse_args([*flags, "--poll-seconds", "0.01", *extra])


def _fake(monkeypatch: pytest.MonkeyPatch, api: FakeApi) -> None:
    def connect(creds: credentials.Credentials, **_: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=creds.server, transport=httpx.MockTransport(api))

    monkeypatch.setattr(kube, "connect", connect)


def test_one_car_reads_its_policy_reports_and_renews(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "car.json").write_text(json.dumps(READING))
    api = FakeApi(CAR)
    _fake(monkeypatch, api)

    async def scenario() -> int:
        stop = asyncio.Event()
        running = asyncio.create_task(cli.run(_args(tmp_path), stop=stop))
        await asyncio.wait_for(api.seen.wait(), timeout=10)
        stop.set()
        return await asyncio.wait_for(running, timeout=10)

    assert asyncio.run(scenario()) == 0
    paths = [path for _, path, _ in api.writes]
    assert paths[0] == "/apis/curbside.dev/v1alpha1/vehiclenodes/car-00001/status"
    assert api.writes[0][2]["status"]["state"] == "Parked"
    assert paths[1] == "/apis/coordination.k8s.io/v1/namespaces/curbside-cars/leases/car-00001"
    assert len(api.writes) == 2  # one report, one renewal: nothing else in the first period


def test_a_car_without_a_vehiclenode_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fake(monkeypatch, FakeApi(None))
    assert asyncio.run(cli.run(_args(tmp_path), stop=asyncio.Event())) == 1
    assert "cannot start: VehicleNode car-00001: GET" in caplog.text
