"""Thin kopf adapters: parse, call reconcile, apply, patch status once.

Importing this package registers every handler, so ``kopf run -m curbside_operator.handlers``
(or ``curbside operator``) runs the whole operator.
"""

from curbside_operator.handlers import fleet, jobs, startup

__all__ = ["fleet", "jobs", "startup"]
