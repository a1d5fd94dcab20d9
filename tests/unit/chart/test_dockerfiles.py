"""The Dockerfiles, parsed (no container engine here): pinned bases, non-root, what the chart runs.

hadolint is not available; these are the rules that matter for the chart: every ``FROM`` names
a pinned base (a patch-level tag or a digest), the final stage runs as a numeric non-root
user, nothing is fetched with ``ADD <url>``, and each image's entrypoint runs what the chart
and the operator's pods pass as arguments.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def resolved_bases(path: Path) -> list[str]:
    steps = instructions(path)
    first_from = next(i for i, (word, _) in enumerate(steps) if word == "FROM")
    # Only ARGs before the first FROM can be used in a FROM line.
    args = dict(rest.split("=", 1) for word, rest in steps[:first_from] if word == "ARG" and "=" in rest)
    stages = set()
    bases = []
    for word, rest in steps:
        if word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            if image not in stages:
                bases.append(image)
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.add(parts[2])
    return bases


def test_three_images() -> None:
    assert {p.name for p in DOCKERFILES} == {"operator.Dockerfile", "agent.Dockerfile", "worker.Dockerfile"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_bases_are_pinned(path: Path) -> None:
    for image in resolved_bases(path):
        name, _, digest = image.partition("@")
        tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
        assert digest.startswith("sha256:") or re.match(
            r"^\d+\.\d+(\.\d+)?[-\w.]*$", tag
        ), f"{path.name}: base {image!r} is not pinned to a version or digest"
        assert tag != "latest", f"{path.name}: {image}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_numeric_non_root(path: Path) -> None:
    steps = instructions(path)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    users = [rest for word, rest in steps[last_from:] if word == "USER"]
    assert users, f"{path.name}: the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), f"{path.name}: USER {users[-1]}"
    assert int(uid) != 0, f"{path.name}: USER {users[-1]}"
    assert not gid or (gid.isdigit() and int(gid) != 0)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_nothing_is_fetched_with_add(path: Path) -> None:
    for word, rest in instructions(path):
        assert not (word == "ADD" and re.search(r"https?://", rest)), f"{path.name}: ADD {rest}"


def test_worker_builds_on_triton_and_serves_the_repository() -> None:
    path = REPO / "docker" / "worker.Dockerfile"
    (base,) = resolved_bases(path)
    assert base.startswith("nvcr.io/nvidia/tritonserver:")
    steps = instructions(path)
    assert ("COPY", "worker/curbside_worker/repository /models") in steps
    # The operator's pods run it as user 1000 with args ["worker"] (reconcile/pods.py).
    assert any(w == "RUN" and "/usr/local/bin/worker" in r and "curbside-worker" in r for w, r in steps)
    assert ("USER", "1000:1000") in steps
    assert not any(w == "ENTRYPOINT" for w, _ in steps)  # NVIDIA's entrypoint runs its arguments


@pytest.mark.parametrize("name", ["operator", "agent"])
def test_python_images_run_their_own_command(name: str) -> None:
    steps = instructions(REPO / "docker" / f"{name}.Dockerfile")
    assert ("ENTRYPOINT", f'["curbside-{name}"]') in steps
    assert ("USER", "65532:65532") in steps  # the chart's podSecurityContext.runAsUser


@pytest.mark.parametrize(
    ("name", "packages"),
    [("operator", {"api", "operator"}), ("agent", {"api", "agent"}), ("worker", {"api", "worker"})],
)
def test_each_image_copies_only_the_packages_it_runs(name: str, packages: set[str]) -> None:
    """An image holds its own package and the API, never the tooling or another image's code."""
    steps = instructions(REPO / "docker" / f"{name}.Dockerfile")
    copied = {r.split()[0].split("/")[0] for w, r in steps if w == "COPY" and not r.startswith("--from")}
    assert copied == packages
