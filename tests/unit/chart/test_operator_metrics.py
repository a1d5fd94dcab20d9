"""What the operator exports beyond counting events: the fleet's gauges and the ledger's size.

The fleet loop's gauges (cars by state and eligibility, ineligible cars by reason) are what the
fleet dashboard's first panels show; the ledger's size is read from its files at scrape time;
the metrics endpoint listens where ``metrics_host`` says (loopback unless the chart says 0.0.0.0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curbside_api.v1alpha1 import vehiclenode as vn
from curbside_operator import metrics, settings
from curbside_operator.controllers import fleet as fleet_runtime
from curbside_operator.handlers import startup


def car(name: str, state: str, *, eligible: bool, reasons: list[str]) -> vn.VehicleNode:
    body: dict[str, Any] = {
        "apiVersion": "curbside.dev/v1alpha1",
        "kind": "VehicleNode",
        "metadata": {"name": name},
        "spec": {
            "vehicle": {"vin": "5YJ3E1EA7KF000001", "owner": f"o-{name}", "model": "Model 3"},
            "hardware": {"accelerator": "hw4", "tops": 144, "memoryGiB": 16},
        },
        "status": {"state": state, "operator": {"eligible": eligible, "reasons": reasons}},
    }
    return vn.VehicleNode.from_body(body)


def samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in metrics.REGISTRY.collect()
        for s in family.samples
        if s.name == name
    }


def test_fleet_gauges_count_cars_by_state_eligibility_and_reason() -> None:
    state = fleet_runtime.FleetState(settings.OperatorConfig())
    state.cars = {
        "a": car("a", "Charging", eligible=True, reasons=[]),
        "b": car("b", "Driving", eligible=False, reasons=["NotParked", "NotCharging"]),
        "c": car("c", "Parked", eligible=False, reasons=["BatteryLow", "NotCharging"]),
    }
    fleet_runtime.FleetLoop(state, client=None)._export_gauges()  # type: ignore[arg-type]
    cars = samples(metrics.VEHICLENODES_NAME)
    assert cars == {
        (("eligible", "true"), ("state", "Charging")): 1,
        (("eligible", "false"), ("state", "Driving")): 1,
        (("eligible", "false"), ("state", "Parked")): 1,
    }
    reasons = {labels[0][1]: value for labels, value in samples(metrics.INELIGIBLE_NAME).items()}
    assert set(reasons) == {str(r) for r in vn.IneligibleReason}  # every reason, zeros included
    assert {r: n for r, n in reasons.items() if n} == {"NotParked": 1, "NotCharging": 2, "BatteryLow": 1}

    del state.cars["c"]  # a car that leaves the fleet leaves the counts
    fleet_runtime.FleetLoop(state, client=None)._export_gauges()  # type: ignore[arg-type]
    reasons = {labels[0][1]: value for labels, value in samples(metrics.INELIGIBLE_NAME).items()}
    assert {r: n for r, n in reasons.items() if n} == {"NotParked": 1, "NotCharging": 1}
    assert len(samples(metrics.VEHICLENODES_NAME)) == 2


def test_ledger_size_is_the_sqlite_file_and_its_write_ahead_log(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    assert startup._file_bytes(str(ledger)) == 0  # not created yet: 0, not an error
    ledger.write_bytes(b"x" * 4096)
    assert startup._file_bytes(str(ledger)) == 4096
    Path(f"{ledger}-wal").write_bytes(b"y" * 1000)
    Path(f"{ledger}-shm").write_bytes(b"z" * 32768)  # an index, not data
    assert startup._file_bytes(str(ledger)) == 5096


def test_metrics_listen_on_loopback_unless_told_otherwise() -> None:
    assert settings.OperatorConfig().metrics_host == "127.0.0.1"
    env = {"CURBSIDE_METRICS_HOST": "0.0.0.0", "CURBSIDE_METRICS_PORT": "9464"}
    config = settings.OperatorConfig.from_env(env)
    assert (config.metrics_host, config.metrics_port) == ("0.0.0.0", 9464)


def test_each_sweep_logs_one_line_on_where_the_fleet_stands(caplog: Any) -> None:
    state = fleet_runtime.FleetState(settings.OperatorConfig())
    state.cars = {
        "a": car("a", "Charging", eligible=True, reasons=[]),
        "b": car("b", "Driving", eligible=False, reasons=["NotParked", "NotCharging"]),
        "c": car("c", "Parked", eligible=False, reasons=["NotCharging"]),
    }
    loop = fleet_runtime.FleetLoop(state, client=None)  # type: ignore[arg-type]
    loop.status_writes, loop.node_writes = 7, 2
    with caplog.at_level("INFO", logger=fleet_runtime.__name__):
        loop._export_gauges()
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fleet:")]
    assert line.startswith("fleet: 3 cars, 1 eligible (not: NotCharging 2, NotParked 1), 0 Leases;")
    assert "queue: 0 changed, 0 sweep, 0 enrolling, 0 at work" in line
    assert "7 status and 2 Node writes so far" in line
    assert "partition" not in line
