"""The developer's ``curbside`` command (tooling: in no image)."""
