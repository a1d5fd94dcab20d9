"""Fixtures for the Triton tests. The real Triton servers (``triton``, ``repository_server``) are
session fixtures of the whole suite (tests/support/triton.py, registered in tests/conftest.py):
the operator's job tests share them.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    return tmp_path
