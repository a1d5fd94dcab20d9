"""``python -m curbside_operator`` is ``curbside-operator``."""

from curbside_operator import main

raise SystemExit(main.main())
