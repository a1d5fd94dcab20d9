"""Curbside's node agent: the car's safety interlock and its voice to the cluster.

Modules (see docs/agent.md): ``signals`` (what the car is doing, never waking it), ``state``
(car state, departure prediction), ``policy`` (the owner's rules, from the API's rule book,
applied to live readings), ``interlock`` (stop local work first, then report), ``status``
(what to write, and only when it changed), ``agent`` (the loop; Kubernetes plugs in as a
``Reporter``), ``kube`` (the Reporter that talks to the API server), ``cli`` (``curbside
agent``), ``metrics`` and ``sim`` (the fleet's mobility model and the simulator process).
"""
