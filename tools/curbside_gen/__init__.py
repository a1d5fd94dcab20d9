"""Generators: everything checked in that code produces (CRDs, Grafana dashboards).

``crds`` renders the CustomResourceDefinitions from the typed models in ``curbside_api``;
``dashboards`` renders the Grafana dashboards from the metric names the operator, the agent and
the worker declare; ``output`` writes their files, or with ``--check`` reports the stale ones.
``python -m curbside_gen`` (``make generate``) runs both; ``make verify`` fails when what they
produce differs from what is committed.
"""
