"""Mass silence is a partition, not a mass departure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from curbside_operator.reconcile import fleet
from curbside_operator.reconcile import vehiclenode as car

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=20)


def leases(fresh: int, silent: int, ancient: int = 0) -> list[car.LeaseView | None]:
    out: list[car.LeaseView | None] = []
    out += [car.LeaseView(NOW - timedelta(seconds=2))] * fresh
    out += [car.LeaseView(NOW - timedelta(seconds=60))] * silent
    out += [car.LeaseView(NOW - timedelta(days=3))] * ancient
    return out


@pytest.mark.parametrize(
    ("fresh", "silent", "ancient", "want"),
    [
        (100, 0, 0, False),
        (90, 10, 0, False),
        (45, 55, 0, True),
        (0, 100, 0, True),
        (1, 2, 0, False),
        (50, 40, 500, False),
    ],
    ids=[
        "all-alive",
        "ten-percent-left",
        "fifty-five-percent",
        "everyone",
        "too-few-to-tell",
        "old-silence-ignored",
    ],
)
def test_partition_suspected_only_for_a_silent_majority(
    fresh: int, silent: int, ancient: int, want: bool
) -> None:
    health = fleet.assess(leases(fresh, silent, ancient), now=NOW, grace=GRACE)
    assert health.partition_suspected is want
    assert health.silent == silent


def test_describe_says_what_it_saw() -> None:
    assert "55/100 cars silent (55%)" in fleet.assess(leases(45, 55), now=NOW, grace=GRACE).describe()
