"""``python -m curbside_agent`` is ``curbside-agent``."""

import sys

from curbside_agent.cli import main

sys.exit(main())
