"""``python -m curbside_worker``: the same as ``curbside-worker`` (used by the simulator and tests)."""

import sys

from curbside_worker.cli import main

sys.exit(main())
