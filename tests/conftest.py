"""Shared pytest configuration: cluster tests are marked so `pytest tests/unit` stays fast.

Plugins for the whole suite: ``figure`` (tests/support/figures.py: measured figures reported,
not asserted) and the session's real Triton servers (tests/support/triton.py: ``triton``,
``repository_server``; started only by a test that asks for one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.support.figures", "tests.support.triton"]

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in str(item.path):
            item.add_marker(pytest.mark.cluster)
