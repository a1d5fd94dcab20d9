"""``python -m curbside_gen.dashboards [--check] [--out ROOT]``: write the chart's dashboard JSON."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from curbside_gen import output
from curbside_gen.dashboards import generate


def main(argv: Sequence[str] | None = None) -> int:
    return output.main(
        argv,
        prog="python -m curbside_gen.dashboards",
        description=__doc__.splitlines()[0],
        generators=[generate],
    )


if __name__ == "__main__":
    sys.exit(main())
