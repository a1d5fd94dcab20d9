"""The work-unit ledger and the dispatcher's worker API (DESIGN.md section 4; docs/dispatch.md).

``ledger`` states the contract, ``sqlite_ledger`` keeps it in one SQLite file, ``inputs`` cuts
a job's input into units, ``results`` stores committed results, ``server`` serves it all to
workers over HTTP. Nothing here talks to Kubernetes: the operator registers jobs and reports
departures.
"""
