"""The work-unit ledger and the dispatcher's worker API (DESIGN.md section 4)."""
