"""Curbside's operator: turns parked cars into an inference cluster (see DESIGN.md)."""
