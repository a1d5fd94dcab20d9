"""Build ``prometheus`` and ``promtool`` from the pinned Go module, once per machine.

Why this exists: the tests run every dashboard panel's query against a real Prometheus and
check the chart's alert rules with ``promtool``; ``make test`` must work on a machine with only
Python, Go and the module proxy (no root, no package manager). ``testbed/promtools`` is a Go
module of its own that requires ``github.com/prometheus/prometheus``, so bumping Prometheus
leaves the control plane's pins and cache key alone. The build drops every service discovery
but file and HTTP (``-tags remove_all_sd``: the tests scrape static targets) and the web UI's
assets (the tests use the HTTP API only). The binaries go to the same per-user cache as the
control plane's, keyed by the version and the module's exact pins.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from curbside_testbed.build import (
    BuildError,
    _count_deps,
    _go_env,
    _run_with_progress,
    _say,
    cache_digest,
    cache_root,
    pinned_version,
)

PROMTOOLS = Path(__file__).resolve().parent.parent / "promtools"
MODULE = "github.com/prometheus/prometheus"
COMMANDS = {
    "prometheus": f"{MODULE}/cmd/prometheus",
    "promtool": f"{MODULE}/cmd/promtool",
}
# remove_all_sd: only the file and HTTP service discoveries (no cloud SDKs to compile);
# netgo: Go's resolver, as Prometheus' own release builds. No builtinassets: no web UI.
TAGS = "remove_all_sd,netgo"


@dataclass(frozen=True)
class PromTools:
    """Where the ``prometheus`` and ``promtool`` of one pinned version live."""

    module_version: str
    key: str
    bin_dir: Path

    @property
    def version(self) -> str:
        """The Prometheus release of the module version (v0.313.4 is Prometheus 3.13.4)."""
        return release(self.module_version)

    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    def is_built(self) -> bool:
        return all(os.access(self.binary(name), os.X_OK) for name in COMMANDS)


def release(module_version: str) -> str:
    """``v0.MMM.P`` → the release: 3.(MMM-300).P from v0.300.0 on, 2.MMM.P before."""
    match = re.fullmatch(r"v0\.(\d+)\.(\d+)(.*)", module_version)
    if not match:
        return module_version
    minor, patch, rest = int(match.group(1)), match.group(2), match.group(3)
    return f"3.{minor - 300}.{patch}{rest}" if minor >= 300 else f"2.{minor}.{patch}{rest}"


def module_version() -> str:
    return pinned_version(PROMTOOLS, MODULE)


def promtools() -> PromTools:
    """The binaries for the pins in this checkout (built or not)."""
    version = module_version()
    key = f"prometheus-{release(version)}-{cache_digest(PROMTOOLS, TAGS)}"
    return PromTools(version, key, cache_root() / "testbed" / key / "bin")


def binary(name: str) -> Path:
    """The cached ``prometheus`` or ``promtool`` (built or not: see ``PromTools.is_built``)."""
    if name not in COMMANDS:
        raise ValueError(f"unknown Prometheus command {name!r}; known: {sorted(COMMANDS)}")
    return promtools().binary(name)


def _ldflags(version: str) -> str:
    pkg = "github.com/prometheus/common/version"
    return " ".join(
        [
            "-s",
            "-w",
            f"-X {pkg}.Version={release(version)}",
            f"-X {pkg}.Revision={version}",
            f"-X {pkg}.Branch={version}",
            f"-X {pkg}.BuildUser=curbside-testbed",
        ]
    )


def build(*, force: bool = False) -> PromTools:
    """Build ``prometheus`` and ``promtool`` into the cache unless there already; return them."""
    pt = promtools()
    if pt.is_built() and not force:
        return pt
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain ('go') is not on PATH; install Go >= 1.25")
    started = time.monotonic()
    staging = pt.bin_dir.with_name("bin.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    env = _go_env(pt.module_version)
    _say(f"building Prometheus {pt.version} ({pt.module_version}) into {pt.bin_dir} (cold build: minutes)")
    targets = list(COMMANDS.values())
    _say("prometheus, promtool: listing packages (downloads the modules on a cold machine)")
    total = _count_deps([f"-tags={TAGS}", *targets], cwd=PROMTOOLS, env=env)
    cmd = [
        "go",
        "build",
        "-v",
        "-trimpath",
        f"-tags={TAGS}",
        "-ldflags",
        _ldflags(pt.module_version),
        "-o",
        str(staging) + "/",
        *targets,
    ]
    _run_with_progress(cmd, cwd=PROMTOOLS, env=env, total=total, label="prometheus, promtool")
    for name in COMMANDS:
        if not os.access(staging / name, os.X_OK):
            raise BuildError(f"build finished but {staging / name} is missing")
    check = subprocess.run(
        [str(staging / "promtool"), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    if check.returncode != 0:
        raise BuildError(f"{staging / 'promtool'} --version failed:\n{check.stdout}{check.stderr}")
    if pt.bin_dir.exists():
        shutil.rmtree(pt.bin_dir)
    staging.rename(pt.bin_dir)
    _say(f"prometheus, promtool built in {time.monotonic() - started:.0f}s: {check.stdout.splitlines()[0]}")
    return pt


def ensure_built() -> PromTools:
    """Return built binaries, building them first if this machine has none."""
    return build(force=False)


if __name__ == "__main__":
    print(build().bin_dir)
