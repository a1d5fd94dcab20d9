"""Curbside's node agent: the car's safety interlock and its voice to the cluster.

Modules (see docs/agent.md): ``signals`` (what the car is doing, never waking it), ``state``
(car state, departure prediction), ``policy`` (the owner's rules, with hysteresis),
``interlock`` (stop local work first, then report), ``status`` (what to write, and only when
it changed), ``agent`` (the loop; Kubernetes plugs in as a ``Reporter``), ``metrics``,
``apimap`` (to and from the VehicleNode API models) and ``sim`` (the fleet's mobility model).
"""
