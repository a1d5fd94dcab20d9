"""Build the test bed's control-plane binaries from pinned Go modules, once per machine.

Why this exists: tests must run against a real kube-apiserver, etcd, controller-manager,
scheduler and kwok, and the CI machine has Go and the module proxy but no Docker and no
release downloads. So we compile them. A cold build takes minutes on two cores; the result
goes to a per-user cache keyed by the versions and the exact module pins, so the second
build (and every later CI run on the same machine) finds the binaries and does nothing.

* ``k8s.io/kubernetes`` and etcd come from ``testbed/gotools`` (a module that requires
  kubernetes and pins each staging module; etcd is the version kubernetes itself pins).
* kwok and helm have no ``replace`` lines, so ``go install module@version`` builds them.
* ``prometheus`` and ``promtool`` (for the tests) come from ``testbed/promtools``, a module of
  their own with a cache folder of its own (``prombuild``); ``build`` builds them too.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

GOTOOLS = Path(__file__).resolve().parent.parent / "gotools"

# The one pinned Kubernetes minor: kube-* from gotools/go.mod (v1.35.4), kwok and helm
# built against a compatible client-go. Bump all three together.
KWOK_VERSION = "v0.7.0"
HELM_VERSION = "v3.19.0"

KUBE_COMMANDS = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    "etcd": "./cmd/etcd",
}
INSTALLED_COMMANDS = {
    "kwok": f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}",
    "helm": f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}",
}
ALL_BINARIES = (*KUBE_COMMANDS, *INSTALLED_COMMANDS)


class BuildError(RuntimeError):
    """A Go build step failed; the message names the step and the tail of its output."""


@dataclass(frozen=True)
class Toolchain:
    """Where the binaries of one pinned version set live."""

    kubernetes_version: str
    key: str
    bin_dir: Path

    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    def is_built(self) -> bool:
        return all(os.access(self.binary(name), os.X_OK) for name in ALL_BINARIES)


def cache_root() -> Path:
    """Per-user cache outside the repository (``$CURBSIDE_CACHE`` overrides it)."""
    override = os.environ.get("CURBSIDE_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "curbside"


def pinned_version(folder: Path, module: str) -> str:
    """The version a Go tools module in ``folder`` pins ``module`` to (its go.mod line)."""
    text = (folder / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)\s*$", text, re.MULTILINE)
    if not match:
        raise BuildError(f"{folder / 'go.mod'}: no 'require {module} vX.Y.Z' line")
    return match.group(1)


def cache_digest(folder: Path, extra: str) -> str:
    """Twelve hex digits of every file under ``folder`` (names and bytes) and ``extra``: the
    part of a cache key that changes whenever the pins or the build settings do."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    digest.update(extra.encode())
    return digest.hexdigest()[:12]


def kubernetes_version() -> str:
    return pinned_version(GOTOOLS, "k8s.io/kubernetes")


def toolchain() -> Toolchain:
    """The toolchain for the pins in this checkout (built or not)."""
    version = kubernetes_version()
    key = f"k8s-{version}-{cache_digest(GOTOOLS, f'{KWOK_VERSION} {HELM_VERSION}')}"
    return Toolchain(version, key, cache_root() / "testbed" / key / "bin")


def _say(message: str) -> None:
    print(f"[testbed build] {message}", file=sys.stderr, flush=True)


def _go_env(version: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    env["GOFLAGS"] = "-mod=mod"
    env["GOTOOLCHAIN"] = env.get("GOTOOLCHAIN", "local")
    return env


def _ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    pkgs = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    flags = ["-s", "-w"]
    for pkg in pkgs:
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def _run_with_progress(cmd: list[str], *, cwd: Path, env: dict[str, str], total: int, label: str) -> None:
    """Run a ``go build -v`` style command, printing how many packages are done."""
    _say(f"{label}: {' '.join(cmd[:3])} ... ({total or 'counting'} packages)")
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    done, last_print = 0, 0.0
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail, line.rstrip()][-30:]
        if not line.startswith(("go: downloading", "#")):
            done += 1
        now = time.monotonic()
        if now - last_print > 10:
            if total:
                pct = min(99, 100 * done // total)
                _say(f"{label}: {done}/{total} packages compiled (~{pct}%), {now - started:.0f}s")
            else:
                _say(f"{label}: {done} packages compiled, {now - started:.0f}s")
            last_print = now
    if proc.wait() != 0:
        raise BuildError(f"{label} failed (exit {proc.returncode}):\n" + "\n".join(tail))
    _say(f"{label}: done in {time.monotonic() - started:.0f}s")


def _count_deps(cmd_targets: list[str], *, cwd: Path, env: dict[str, str]) -> int:
    out = subprocess.run(
        ["go", "list", "-deps", *cmd_targets], cwd=cwd, env=env, capture_output=True, text=True
    )
    return len(out.stdout.splitlines()) if out.returncode == 0 else 0


def build(*, force: bool = False) -> Toolchain:
    """Build the control plane and the tests' Prometheus into the cache; return the toolchain.

    What ``curbside testbed build`` (``make testbed-build``, so ``make test``) runs."""
    from curbside_testbed import prombuild  # it imports this module

    tc = build_control_plane(force=force)
    prombuild.build(force=force)
    return tc


def build_control_plane(*, force: bool = False) -> Toolchain:
    """Build every missing control-plane binary into the cache; return the toolchain."""
    tc = toolchain()
    if tc.is_built() and not force:
        return tc
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain ('go') is not on PATH; install Go >= 1.25")
    started = time.monotonic()
    staging = tc.bin_dir.with_name("bin.partial")
    staging.mkdir(parents=True, exist_ok=True)
    env = _go_env(tc.kubernetes_version)
    _say(f"building the control plane {tc.kubernetes_version} into {tc.bin_dir} (cold build: minutes)")

    missing = [n for n in KUBE_COMMANDS if force or not os.access(staging / n, os.X_OK)]
    if missing:
        targets = [KUBE_COMMANDS[n] for n in missing]
        total = _count_deps(targets, cwd=GOTOOLS, env=env)
        cmd = [
            "go",
            "build",
            "-v",
            "-trimpath",
            "-ldflags",
            _ldflags(tc.kubernetes_version),
            "-o",
            str(staging) + "/",
            *targets,
        ]
        _run_with_progress(cmd, cwd=GOTOOLS, env=env, total=total, label=", ".join(missing))
        # `go build -o dir/` names binaries after the package folder; etcd's is cmd/etcd.
    for name, spec in INSTALLED_COMMANDS.items():
        if not force and os.access(staging / name, os.X_OK):
            continue
        ienv = dict(env, GOBIN=str(staging))
        ienv.pop("GOFLAGS", None)
        cmd = ["go", "install", "-v", "-trimpath", "-ldflags=-s -w", spec]
        _run_with_progress(cmd, cwd=Path.home(), env=ienv, total=0, label=name)
    for name in ALL_BINARIES:
        if not os.access(staging / name, os.X_OK):
            raise BuildError(f"build finished but {staging / name} is missing")
    if tc.bin_dir.exists():
        shutil.rmtree(tc.bin_dir)
    staging.rename(tc.bin_dir)
    _say(f"all binaries built in {time.monotonic() - started:.0f}s")
    return tc


def ensure_built() -> Toolchain:
    """Return a built control plane, building it first if this machine has none."""
    return build_control_plane(force=False)
