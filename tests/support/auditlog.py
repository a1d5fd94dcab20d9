"""The audit log read once it has caught up with the test.

Why this exists: the API server writes its audit log in batches, so a test that counts writes
right after a scenario may miss the last ones; ``writes_since`` writes a marker object and
reads the log once the marker shows in it.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from curbside_testbed import audit
from tests.support import wait


def writes_since(api: httpx.Client, log: Path, since: audit.Mark) -> list[audit.Write]:
    """Every write in the audit log since ``since``, once the batched log has caught up.

    A marker ConfigMap is written last; when it shows up in the log, so has everything before.
    """
    marker = f"audit-flush-{os.urandom(3).hex()}"
    r = api.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": marker}})
    assert r.status_code == 201, r.text

    def flushed() -> list[audit.Write] | None:
        found = audit.writes_since(log, since)
        return found if any(w.name == marker for w in found) else None

    try:
        found = wait.until(flushed, timeout=20, what="the audit log to flush") or []
        return [w for w in found if w.name != marker]
    finally:
        api.delete(f"/api/v1/namespaces/default/configmaps/{marker}")
