"""Pure decision logic: (desired, observed, now) -> plan. No I/O, no kopf, no clock reads."""
