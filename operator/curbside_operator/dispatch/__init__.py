"""The work-unit ledger and the dispatcher's worker API (docs/design.md; docs/dispatch.md).

``ledger`` states the contract (its shared values are in ``curbside_operator.facts``),
``sqlite_ledger`` keeps it in one SQLite file (with ``sqlite_units``, ``sqlite_trust``,
``sqlite_reads`` and ``sqlite_schema``), ``inputs`` cuts a job's input into units, ``results``
stores committed results, ``service`` runs the operator's ledger calls on the ledger's thread
and ``server`` serves it all to workers over HTTP (``curbside_api.wire``). Nothing here talks
to Kubernetes: the operator registers jobs and reports departures.
"""
