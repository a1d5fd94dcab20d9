"""Measured figures (latencies, rates) reported by tests, never asserted: a pytest plugin.

Why this exists: how fast the test bed answers depends on the machine and on what else runs
on it, so a test asserts what must hold at any speed (every change seen, in order, the
reaction happened) and reports what it measured through the ``figure`` fixture. Each figure
is printed at once (visible with ``-s``), recorded as a property of the test (in JUnit XML),
and listed in a "measured figures" section at the end of the run, whatever the capture mode.
Registered by ``pytest_plugins`` in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

Figure = Callable[[str, str], None]
"""``figure(name, text)``: report one measured figure of this test."""

_FIGURES = pytest.StashKey[list[tuple[str, str, str]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FIGURES] = []


@pytest.fixture
def figure(request: pytest.FixtureRequest, record_property: Callable[[str, object], None]) -> Figure:
    """``figure(name, text)`` reports a measured figure: printed, recorded, summed up at the end."""

    def report(name: str, text: str) -> None:
        print(f"[figure] {name}: {text}", flush=True)
        record_property(f"figure: {name}", text)
        request.config.stash[_FIGURES].append((request.node.nodeid, name, text))

    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    figures = config.stash.get(_FIGURES, [])
    if not figures:
        return
    terminalreporter.section("measured figures (reported, not asserted)")
    for nodeid, name, text in figures:
        terminalreporter.write_line(f"{nodeid}: {name}: {text}")
