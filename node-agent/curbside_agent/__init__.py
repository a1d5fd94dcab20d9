"""Curbside's node agent: the car's safety interlock and its voice to the cluster."""
