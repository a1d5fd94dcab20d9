"""Scenario 6: the inference path: a worker's throughput through Triton vs the model in-process.

Why this exists: a car's worker reaches its model only through Triton (gRPC, batching, one more
copy); Curbside's targets (docs/design.md, Numbers) allow that at most 5 % of the in-process
throughput, same batches. ``bench/triton_vs_torch.py`` measures it (a real ``tritonserver`` on
the cars' model repository in a child process, both workloads, alternating runs); the test
bed's tooling may not import the agent, so it runs as a child process and its JSON is read
back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from curbside_bench import kit
from curbside_bench.results import Row, Scenario


def run(repo: Path, work: Path, *, quick: bool, timeout: float) -> Scenario:
    out = work / "triton_vs_torch.json"
    log = work / "triton_vs_torch.log"
    argv = [sys.executable, str(repo / "bench" / "triton_vs_torch.py"), "--json", str(out), "--repeats", "5"]
    with log.open("wb") as sink:
        done = subprocess.run(
            [*argv, *(["--quick"] if quick else [])],
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            cwd=repo,
        )
    if done.returncode != 0 or not out.exists():
        tail = log.read_text(errors="replace")[-1500:]
        raise kit.BenchError(f"bench/triton_vs_torch.py failed (exit {done.returncode}):\n{tail}")
    figures: dict[str, Any] = json.loads(out.read_text())
    server = {"repository": "tritonserver, the cars' model repository", "pytriton": "PyTriton"}.get(
        figures.get("server", "pytriton"), "?"
    )
    if figures.get("shared_memory"):
        server += ", inputs in shared memory"
    rows = [
        Row(
            "6 Inference path",
            f"{r['model']}, batch {r.get('batch', '?')}: items/s through Triton",
            "items/s",
            r["triton_items_per_s"],
            r["inprocess_items_per_s"],
            baseline_is="same model in-process",
            note=(
                f"{server}; ratio {r['ratio']:.3f}, one request at a time; "
                f"{r.get('triton_pipelined_items_per_s', float('nan')):.1f}/s with the worker's 2 in flight"
            ),
        )
        for r in figures["rows"]
    ]
    return Scenario("inference", figures, rows)
