"""The tests' Prometheus: its version, its cache folder, apart from the control plane's."""

from __future__ import annotations

from pathlib import Path

import pytest

from curbside_testbed import build, prombuild


@pytest.mark.parametrize(
    ("module", "release"), [("v0.313.4", "3.13.4"), ("v0.300.0", "3.0.0"), ("v0.55.1", "2.55.1")]
)
def test_prometheus_release_of_module_version(module: str, release: str) -> None:
    assert prombuild.release(module) == release


def test_prometheus_cache_key_follows_the_pins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CURBSIDE_CACHE", str(tmp_path))
    pt = prombuild.promtools()
    assert pt.key.startswith(f"prometheus-{pt.version}-")
    assert pt.bin_dir == tmp_path / "testbed" / pt.key / "bin"
    assert prombuild.binary("promtool") == pt.bin_dir / "promtool"
    assert not pt.is_built()
    assert pt.bin_dir != build.toolchain().bin_dir
    monkeypatch.setattr(prombuild, "TAGS", "netgo")
    assert prombuild.promtools().key != pt.key
    with pytest.raises(ValueError, match="unknown Prometheus command"):
        prombuild.binary("alertmanager")
