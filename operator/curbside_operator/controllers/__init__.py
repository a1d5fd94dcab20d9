"""The operator's controllers: the long-lived loops and caches behind the kopf hooks.

``fleet`` holds every car (an index fed by watch events) and runs the fleet loop that writes
car conditions and taints; ``job_state`` holds every job and inference pod, and ``jobs`` runs
the job loop that places and withdraws inference pods and keeps job status; ``standings``
turns the ledger's trust records into car standings; ``workqueue`` is the keyed,
de-duplicating queue the fleet loop drains. They reach the ledger only through the
dispatcher's async methods (``dispatch.service``). The kopf hooks in
``handlers/`` only feed them events; ``reconcile/`` decides, ``kube/`` writes.
"""
