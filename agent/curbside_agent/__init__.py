"""Curbside's car agent: the car's safety interlock and its voice to the cluster.

The agent image runs it as ``curbside-agent``; the fleet simulator (``curbside_sim``, tooling)
runs thousands of its ``Agent`` objects in one process. Modules (see docs/agent.md):
``signals`` (what the car is doing, never waking it), ``state`` (car state, departure
prediction), ``policy`` (the owner's rules, from the API's rule book, applied to live
readings), ``interlock`` (stop local work first, then report), ``status`` (what to write, and
only when it changed), ``agent`` (the loop; Kubernetes plugs in as a ``Reporter``), ``kube``
(the Reporter that talks to the API server), ``credentials`` (a kubeconfig or the in-cluster
ServiceAccount), ``cli`` (``curbside-agent``) and ``metrics``.
"""
