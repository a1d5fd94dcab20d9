"""set_condition follows Kubernetes conventions: a table of before/after, like Kueue's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pydantic
import pytest

from curbside_api import conditions

T0 = datetime(2025, 1, 1, 8, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)
S = conditions.Status


def cond(
    type: str, status: S, reason: str, message: str = "", gen: int = 1, at: datetime = T0
) -> conditions.Condition:
    return conditions.Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        observed_generation=gen,
        last_transition_time=at,
    )


CASES = [
    pytest.param(
        [],
        dict(type="Ready", status=S.TRUE, reason="AgentReporting", message="", generation=1),
        [cond("Ready", S.TRUE, reason="AgentReporting", at=NOW)],
        True,
        id="new-condition-is-appended-with-now",
    ),
    pytest.param(
        [cond("Ready", S.TRUE, reason="AgentReporting")],
        dict(type="Ready", status=S.TRUE, reason="AgentReporting", message="", generation=1),
        [cond("Ready", S.TRUE, reason="AgentReporting")],
        False,
        id="identical-is-no-change",
    ),
    pytest.param(
        [cond("Ready", S.FALSE, reason="AgentOffline")],
        dict(type="Ready", status=S.FALSE, reason="LeaseExpired", message="", generation=1),
        [cond("Ready", S.FALSE, reason="LeaseExpired")],
        True,
        id="new-reason-same-status-keeps-transition-time",
    ),
    pytest.param(
        [cond("Succeeded", S.UNKNOWN, reason="UnitsRunning", message="10 of 100")],
        dict(type="Succeeded", status=S.UNKNOWN, reason="UnitsRunning", message="20 of 100", generation=1),
        [cond("Succeeded", S.UNKNOWN, reason="UnitsRunning", message="20 of 100")],
        True,
        id="new-message-keeps-transition-time",
    ),
    pytest.param(
        [cond("Succeeded", S.UNKNOWN, reason="UnitsRunning", gen=1)],
        dict(type="Succeeded", status=S.UNKNOWN, reason="UnitsRunning", message="", generation=2),
        [cond("Succeeded", S.UNKNOWN, reason="UnitsRunning", gen=2)],
        True,
        id="new-generation-is-recorded-keeps-transition-time",
    ),
    pytest.param(
        [cond("Ready", S.TRUE, reason="AgentReporting")],
        dict(type="Ready", status=S.FALSE, reason="AgentOffline", message="car is off", generation=1),
        [cond("Ready", S.FALSE, reason="AgentOffline", message="car is off", at=NOW)],
        True,
        id="flip-true-to-false-moves-transition-time",
    ),
    pytest.param(
        [cond("Succeeded", S.UNKNOWN, reason="Pending")],
        dict(type="Succeeded", status=S.TRUE, reason="Completed", message="", generation=1),
        [cond("Succeeded", S.TRUE, reason="Completed", at=NOW)],
        True,
        id="flip-unknown-to-true-moves-transition-time",
    ),
    pytest.param(
        [cond("Running", S.TRUE, reason="UnitsRunning"), cond("Succeeded", S.UNKNOWN, reason="UnitsRunning")],
        dict(type="Succeeded", status=S.FALSE, reason="MaxAttemptsExceeded", message="", generation=3),
        [
            cond("Running", S.TRUE, reason="UnitsRunning"),
            cond("Succeeded", S.FALSE, reason="MaxAttemptsExceeded", gen=3, at=NOW),
        ],
        True,
        id="other-conditions-untouched-order-kept",
    ),
    pytest.param(
        [cond("Running", S.TRUE, reason="UnitsRunning")],
        dict(type="Failed", status=S.FALSE, reason="UnitsRunning", message="", generation=1),
        [
            cond("Running", S.TRUE, reason="UnitsRunning"),
            cond("Failed", S.FALSE, reason="UnitsRunning", at=NOW),
        ],
        True,
        id="second-type-is-appended",
    ),
]


@pytest.mark.parametrize(("given", "args", "want_conditions", "want_changed"), CASES)
def test_set_condition(
    given: list[conditions.Condition],
    args: dict[str, object],
    want_conditions: list[conditions.Condition],
    want_changed: bool,
) -> None:
    current = [c.model_copy() for c in given]
    changed = conditions.set_condition(current, now=NOW, **args)  # type: ignore[arg-type]
    assert changed is want_changed
    assert current == want_conditions


def test_transition_time_is_whole_seconds_in_utc_form() -> None:
    current: list[conditions.Condition] = []
    conditions.set_condition(
        current,
        type="Ready",
        status=S.TRUE,
        reason="AgentReporting",
        message="",
        generation=1,
        now=datetime(2025, 1, 1, 8, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=2))),
    )
    assert current[0].to_json()["lastTransitionTime"] == "2025-01-01T08:00:00+02:00"
    assert current[0].last_transition_time.microsecond == 0


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        conditions.set_condition(
            [],
            type="Ready",
            status=S.TRUE,
            reason="AgentReporting",
            message="",
            generation=1,
            now=datetime(2025, 1, 1),
        )


@pytest.mark.parametrize("reason", ["lease-expired", "leaseExpired", "", "Lease Expired"], ids=repr)
def test_reasons_must_be_camel_case(reason: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="reason"):
        conditions.set_condition(
            [], type="Ready", status=S.FALSE, reason=reason, message="", generation=1, now=NOW
        )


def test_find_and_is_true() -> None:
    current = [cond("Ready", S.TRUE, reason="AgentReporting"), cond("Eligible", S.FALSE, reason="BatteryLow")]
    assert conditions.is_true(current, conditions.READY)
    assert not conditions.is_true(current, conditions.ELIGIBLE)
    assert not conditions.is_true(current, "Missing")
    found = conditions.find(current, conditions.ELIGIBLE)
    assert found is not None
    assert found.reason == "BatteryLow"
    assert conditions.find(current, "Missing") is None


def test_wire_form_is_metav1_condition() -> None:
    wire = cond("Ready", S.UNKNOWN, reason="NeverReported", gen=4).to_json()
    assert wire == {
        "type": "Ready",
        "status": "Unknown",
        "observedGeneration": 4,
        "lastTransitionTime": "2025-01-01T08:00:00Z",
        "reason": "NeverReported",
        "message": "",
    }
