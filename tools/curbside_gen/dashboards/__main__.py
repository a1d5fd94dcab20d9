"""``python -m curbside_gen.dashboards [--check]``: write the chart's dashboard JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from curbside_gen import crds as crdgen
from curbside_gen.dashboards import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curbside_gen.dashboards", description=__doc__)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is stale")
    parser.add_argument("--out", type=Path, help="repository root to write into (default: this checkout)")
    args = parser.parse_args(argv)
    root = args.out.resolve() if args.out else crdgen.repo_root()
    differ = generate(root, check=args.check)
    for line in differ:
        print(("stale: " if args.check else "wrote: ") + line)
    if args.check and differ:
        print("run 'make generate' and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
