"""Every component listens on loopback only and uses the bed's own ports and files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from curbside_testbed import build, components


@pytest.fixture
def layout(tmp_path: Path) -> components.Layout:
    return components.Layout(root=tmp_path, ports=components.Ports(2379, 2380, 6443, 10257, 10259, 10247))


@pytest.mark.parametrize("name", components.ORDER)
def test_component_binds_loopback_only(layout: components.Layout, tmp_path: Path, name: str) -> None:
    tc = build.Toolchain("v1.35.4", "k", tmp_path / "bin")
    cmd = components.command(name, layout, tc)
    assert cmd[0] == str(tmp_path / "bin" / name)
    addresses = [a for a in cmd if "://" in a or "address" in a]
    assert addresses, cmd
    assert all("127.0.0.1" in a for a in addresses if "url" in a or "address" in a), addresses
    assert all("0.0.0.0" not in a for a in cmd)


def test_unknown_component_is_refused(layout: components.Layout, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown component"):
        components.command("kubelet", layout, build.Toolchain("v1", "k", tmp_path))


def test_cache_key_follows_the_pins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CURBSIDE_CACHE", str(tmp_path))
    tc = build.toolchain()
    assert tc.kubernetes_version.startswith("v1.")
    assert tc.bin_dir == tmp_path / "testbed" / tc.key / "bin"
    assert not tc.is_built()
    monkeypatch.setattr(build, "KWOK_VERSION", "v9.9.9")
    assert build.toolchain().key != tc.key


def test_kwok_heartbeats_node_status_like_a_kubelet_with_a_lease(layout: components.Layout) -> None:
    """kwok v0.7.0's own default (with Leases on) patches every Node's status every 20-45 s."""
    components.write_kwok_config(layout)
    docs = list(yaml.safe_load_all((layout.root / ".kwok" / "kwok.yaml").read_text()))
    assert docs[0]["kind"] == "KwokConfiguration"
    stages = {d["metadata"]["name"]: d["spec"] for d in docs[1:]}
    assert set(stages) == {"node-initialize", "node-heartbeat-with-lease", "node-departed"}
    assert all(s["resourceRef"] == {"apiGroup": "v1", "kind": "Node"} for s in stages.values())
    delay = stages["node-heartbeat-with-lease"]["delay"]
    assert delay["durationMilliseconds"] >= 300_000  # a kubelet's nodeStatusReportFrequency
    assert delay["jitterDurationMilliseconds"] >= delay["durationMilliseconds"]
    # A departed (Terminated) car's queued heartbeat is replaced by a stage that never plays.
    departed = stages["node-departed"]
    assert departed["selector"]["matchExpressions"][0]["values"] == ["Terminated"]
    assert departed["delay"]["durationMilliseconds"] >= 365 * 86_400_000
    assert not departed["next"]
    # The initial stage makes a new Node Ready at once (no delay), as kwok's own does.
    assert "delay" not in stages["node-initialize"]
    assert "phase: Running" in stages["node-initialize"]["next"]["statusTemplate"]


@pytest.mark.parametrize(("cars", "leases", "pods"), [(1_000, 16, 8), (10_000, 64, 32)])
def test_kwok_gets_more_workers_for_a_big_fleet(tmp_path: Path, cars: int, leases: int, pods: int) -> None:
    """A big fleet owes more Lease renewals, and its jobs delete thousands of pods at once."""
    big = components.Layout(
        root=tmp_path,
        ports=components.Ports(2379, 2380, 6443, 10257, 10259, 10247),
        lease_seconds=components.lease_seconds_for(cars),
    )
    components.write_kwok_config(big)
    options = next(yaml.safe_load_all((tmp_path / ".kwok" / "kwok.yaml").read_text()))["options"]
    assert (options["nodeLeaseParallelism"], options["podPlayStageParallelism"]) == (leases, pods)
