"""The Curbside API: typed models that are the single source of truth for the CRDs.

Imports pydantic only, so the car's agent and the pure reconcile layer can use it.
"""

GROUP = "curbside.dev"
CATEGORIES = ["curbside"]
