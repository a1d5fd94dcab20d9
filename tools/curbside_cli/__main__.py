"""``python -m curbside_cli`` is ``curbside``."""

from curbside_cli import main

raise SystemExit(main.main())
