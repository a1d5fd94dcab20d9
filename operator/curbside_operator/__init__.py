"""Curbside's operator: turns parked cars into an inference cluster (see docs/design.md)."""
