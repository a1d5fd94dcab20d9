"""Fixtures for the observability test: the fleet side's operator process, scripted cars and the
shared Triton."""

from __future__ import annotations

from tests.cluster.fleet.conftest import cars as cars  # re-exported fixture
from tests.cluster.fleet.conftest import operator as operator  # re-exported fixture
from tests.triton.conftest import triton as triton  # re-exported fixture
