"""Which pod creates count as the replacements of silent cars' pods."""

from __future__ import annotations

from curbside_bench import departure
from curbside_bench.curbside import PodWrite


def test_creates_before_the_first_silent_pod_was_deleted_are_not_replacements() -> None:
    writes = [
        PodWrite(10.0, "create", "depart-car-1"),  # the job still filling a freed car
        PodWrite(12.0, "create", "depart-car-2"),
        PodWrite(300.0, "delete", "depart-car-7"),  # the operator takes the silent car's pod
        PodWrite(300.5, "delete", "depart-car-8"),
        PodWrite(301.0, "create", "depart-car-3"),
        PodWrite(301.2, "create", "depart-car-4"),
    ]
    gone = {"depart-car-7", "depart-car-8"}
    assert departure.replacements(writes, gone, 2) == [301.0, 301.2]


def test_no_replacements_until_there_are_enough() -> None:
    writes = [PodWrite(10.0, "create", "depart-car-1"), PodWrite(300.0, "delete", "depart-car-7")]
    assert departure.replacements(writes, {"depart-car-7"}, 1) is None
    assert departure.replacements(writes[:1], {"depart-car-7"}, 1) is None
