"""``python -m curbside_agent.worker``: the same as ``curbside worker`` (used by the simulator and tests)."""

import sys

from curbside_agent.worker.cli import main

sys.exit(main())
