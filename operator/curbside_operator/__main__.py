"""``python -m curbside_operator`` is ``curbside``."""

from curbside_operator import cli

raise SystemExit(cli.main())
