"""``python -m curbside_gen [--check] [--out ROOT]``: run every generator (CRDs, dashboards)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from curbside_gen import crds, dashboards, output


def main(argv: Sequence[str] | None = None) -> int:
    return output.main(
        argv,
        prog="python -m curbside_gen",
        description=__doc__.splitlines()[0],
        generators=[crds.generate, dashboards.generate],
    )


if __name__ == "__main__":
    sys.exit(main())
