"""``make demo``: a newcomer's first look at Curbside, on a laptop with no Docker.

Why this exists: the README promises one command that shows a simulated fleet on a real
Kubernetes control plane. Today it brings up the ``demo`` test bed with 1,000 car Nodes and
prints a fleet summary read back from the API server; as the operator, agent and simulator
land, this is where they are started and shown doing real inference.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Sequence
from pathlib import Path

from curbside_testbed import bed, build, fleet


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def summary(tb: bed.TestBed) -> str:
    """A human-readable summary of the fleet and the control plane behind it."""
    with tb.http() as client:
        cars = fleet.list_cars(client)
        version = client.get("/version").json()["gitVersion"]
    ready = sum(1 for n in cars if fleet.is_ready(n))
    regions = collections.Counter(n["metadata"]["labels"]["topology.kubernetes.io/region"] for n in cars)
    hardware = collections.Counter(n["metadata"]["labels"]["node.kubernetes.io/instance-type"] for n in cars)
    tops = sum(int(n["metadata"]["labels"]["curbside.dev/accelerator-tops"]) for n in cars)
    lines = [
        f"Curbside fleet on test bed {tb.name!r} (Kubernetes {version}, {tb.server})",
        f"  cars          {len(cars)} ({ready} Ready)",
        f"  regions       {', '.join(f'{r} {c}' for r, c in sorted(regions.items()))}",
        f"  hardware      {', '.join(f'{h} {c}' for h, c in sorted(hardware.items()))}",
        f"  accelerators  {tops:,} INT8 TOPS in total",
        "  control plane",
    ]
    assert tb.layout is not None
    for name, pid in tb.layout.pids.items():
        lines.append(f"    {name:25} pid {pid:<8} {_rss_mb(pid):6.0f} MB RSS")
    lines += [
        "",
        "Try:",
        f"  eval \"$({Path('.venv/bin/curbside')} testbed env --name {tb.name})\"",
        "  kubectl get nodes -l curbside.dev/vehicle=true -L topology.kubernetes.io/region | head",
        f"  .venv/bin/curbside testbed down --name {tb.name}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m curbside_testbed.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--cars", type=int, default=1000)
    parser.add_argument("--name", default="demo")
    args = parser.parse_args(argv)
    build.ensure_built()
    tb = bed.TestBed(args.name)
    started = time.monotonic()
    tb.up(cars=args.cars, timeout=900)
    print(f"[demo] test bed up in {time.monotonic() - started:.1f}s\n")
    print(summary(tb))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
