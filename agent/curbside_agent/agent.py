"""The agent loop: read the car, stop work if it must, then report, and heartbeat like a kubelet.

Why this module exists: it is where the pure pieces meet the order that makes them safe. One
``step`` does, in this order:

1. Ask the cheap sleep flag; read the full signals only if the car is awake (never wake it).
2. If the car is not parked (or cannot be read), stop local work through the interlock
   **before anything else**, including computing the status.
3. Count the energy the inference computer used since the last reading (its cumulative
   ``energyUsedKwh`` counter) on the owner's local day; then learn departures, predict the
   next one, evaluate the owner's policy (the daily energy budget among it); stop local work too
   when the policy says no (battery, heat, window...), and allow it again when it says yes.
4. Build the status; patch it only if ``status.build`` says it changed. The patch goes out
   through ``Interlock.report``, so the timeline proves every stop came first.
5. Renew the Lease when its period is due (cheap, the only periodic write).

The Kubernetes side is injected as a ``Reporter`` (``renew_lease``, ``patch_status``), so the
loop is unit-tested with a fake reporter, and the simulator can drive thousands of agents by
calling ``step`` whenever a car's reading changes instead of polling. ``run`` is the polling
driver for a real car. Clocks are injected: ``now`` (wall time, for reports and the owner's
local time) and ``monotonic`` (for latencies and the Lease period).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from curbside_agent import interlock, metrics, policy, state, status
from curbside_agent.signals import reading, sources

log = logging.getLogger(__name__)

_PARKED = frozenset({state.CarState.PARKED, state.CarState.CHARGING, state.CarState.ASLEEP})


class ReportError(Exception):
    """A report (Lease renewal or status patch) did not reach the API server.

    ``Reporter`` implementations raise this (or a subclass, with the cause chained); the agent
    logs it in one line and retries on its next step. Anything else escaping a reporter is a
    bug and is logged with its traceback.
    """


class Reporter(Protocol):
    """Where the agent's reports go: the car's Lease and its VehicleNode status."""

    async def renew_lease(self) -> None:
        """Renew the car's ``coordination.k8s.io`` Lease (one write). Raises ``ReportError``."""

    async def patch_status(self, patch: dict[str, Any]) -> None:
        """Merge-patch the car's VehicleNode ``status`` (``None`` values delete fields).

        Raises ``ReportError``."""


@dataclasses.dataclass(frozen=True, slots=True)
class StepResult:
    """What one step saw and did."""

    car: state.CarState
    eligibility: policy.Eligibility
    departure: state.Prediction | None
    patched: tuple[str, ...]
    renewed: bool
    stopped: int


class Agent:
    """One car's agent. See the module docstring for the order of a step."""

    def __init__(
        self,
        *,
        signals: sources.VehicleSignals,
        reporter: Reporter,
        owner_policy: policy.OwnerPolicy,
        guard: interlock.Interlock,
        now: Callable[[], datetime],
        monotonic: Callable[[], float],
        region: str | None = None,
        lease_renew_seconds: float = 10.0,
        history: state.DepartureHistory | None = None,
        limits: status.Thresholds | None = None,
    ) -> None:
        self.signals = signals
        self.reporter = reporter
        self.policy = owner_policy
        self.interlock = guard
        self.now = now
        self.monotonic = monotonic
        self.region = region
        self.lease_renew_seconds = lease_renew_seconds
        self.history = history
        self.limits = limits or status.Thresholds.for_rules(owner_policy)
        self.energy = policy.EnergyMeter()
        self.counter = policy.EnergyCounter()
        self.car: state.CarState | None = None
        self.value: reading.Reading | None = None
        self.eligible = False
        self.reported: dict[str, Any] | None = None
        self._last_renew: float | None = None

    def set_policy(self, owner_policy: policy.OwnerPolicy) -> None:
        """The owner changed the policy: judge (and report faithfully) by the new rules from now on."""
        self.policy = owner_policy
        self.limits = status.Thresholds.for_rules(owner_policy)

    def record_energy(self, kwh: float) -> None:
        """Count ``kwh`` of compute energy on the owner's local day of ``now`` (policy's time zone).

        ``step`` calls this with what the reading's ``energyUsedKwh`` counter grew by; a car
        whose gateway has no counter can be fed here by whatever measures its work.
        """
        if kwh > 0:
            self.energy = self.energy.record(kwh, at=self.now(), tz=self.policy.tz)

    def resume(self, reported: dict[str, Any] | None) -> None:
        """Start from the status this car reported last (a restarted agent).

        Nothing unchanged is rewritten, and today's energy carries on from the reported
        ``energyUsedTodayKwh`` if its ``observedAt`` is on today's local day (it may lag the
        true figure by less than the report step, 0.5 kWh), so a restart does not hand the
        car a fresh budget.
        """
        self.reported = reported
        if not reported or reported.get("energyUsedTodayKwh") is None or not reported.get("observedAt"):
            return
        try:
            observed = datetime.fromisoformat(str(reported["observedAt"]).replace("Z", "+00:00"))
            used = float(reported["energyUsedTodayKwh"])
        except (TypeError, ValueError):
            return
        if observed.tzinfo is not None and math.isfinite(used) and used > 0:
            self.energy = policy.EnergyMeter(day=observed.astimezone(self.policy.tz).date(), used_kwh=used)

    def _count_energy(self) -> None:
        """Record what the fresh reading's energy counter grew by since the previous one."""
        kwh = None if self.value is None else self.value.energy_used_kwh
        if kwh is None:
            return
        self.counter, used = self.counter.advance(kwh)
        self.record_energy(used)

    async def _observe(self) -> state.CarState:
        """The car's state, reading full signals only when the car is awake."""
        try:
            if await self.signals.asleep():
                return state.CarState.ASLEEP
            self.value = await self.signals.read()
        except (sources.SignalsUnavailableError, reading.ReadingError) as exc:
            metrics.SIGNAL_ERRORS.inc()
            log.warning("cannot read vehicle signals: %s", exc)
            return state.CarState.OFFLINE
        return state.car_state(self.value)

    def _transition(self, car: state.CarState, *, now: datetime) -> None:
        previous = self.car
        self.car = car
        if previous == car:
            return
        metrics.STATE_TRANSITIONS.labels(
            from_state=previous.value if previous else "Unknown", to_state=car.value
        ).inc()
        if self.history is None:
            self.history = state.DepartureHistory(tz=self.policy.tz, since=now)
        if car is state.CarState.DRIVING and previous in _PARKED:
            self.history = self.history.with_departure(now)

    def _set_eligible(self, verdict: policy.Eligibility, *, detected_at: float) -> int:
        stopped = 0
        if not verdict.eligible and not self.interlock.engaged:
            reason = verdict.reasons[0].value
            stopped = self.interlock.stop_all(detected_at=detected_at, reason=reason)
        elif verdict.eligible and self.interlock.engaged:
            self.interlock.release()
        if verdict.eligible != self.eligible:
            metrics.ELIGIBLE.inc() if verdict.eligible else metrics.ELIGIBLE.dec()
        self.eligible = verdict.eligible
        return stopped

    async def _report(self, update: status.Update) -> tuple[str, ...]:
        if not update.changed:
            return ()
        try:
            await self.interlock.report(lambda: self.reporter.patch_status(update.patch()))
        except ReportError as exc:
            metrics.STATUS_PATCH_ERRORS.inc()
            log.warning("status patch failed, retrying on the next step: %s", exc)
            return ()
        except Exception:  # a bug in a pluggable reporter: still "retry next step", but loudly
            metrics.STATUS_PATCH_ERRORS.inc()
            log.exception("status patch failed; retrying on the next step")
            return ()
        metrics.STATUS_PATCHES.inc()
        self.reported = update.status
        return update.fields

    def next_renewal(self) -> float:
        """When (``monotonic`` seconds) the Lease is next due; at once if never renewed."""
        return -math.inf if self._last_renew is None else self._last_renew + self.lease_renew_seconds

    def defer_renewal(self, until: float) -> None:
        """Do not renew before ``until`` (``monotonic`` seconds), then every period as usual.

        The simulator staggers a fleet's first renewals over one period with this, so ten
        thousand cars started together do not renew in the same second forever after.
        """
        self._last_renew = until - self.lease_renew_seconds

    async def heartbeat(self) -> bool:
        """Renew the Lease if its period is due; whether it was renewed. Never raises for I/O.

        ``step`` calls this; the simulator also calls it alone for cars whose signals did not
        change, which is all a quiet car costs.
        """
        started = self.monotonic()
        if started < self.next_renewal():
            return False
        try:
            await self.reporter.renew_lease()
        except ReportError as exc:
            metrics.LEASE_RENEW_ERRORS.inc()
            log.warning("lease renewal failed, retrying on the next step: %s", exc)
            return False
        except Exception:  # as above: a bug in the reporter, retried but logged in full
            metrics.LEASE_RENEW_ERRORS.inc()
            log.exception("lease renewal failed; retrying on the next step")
            return False
        self._last_renew = started
        metrics.LEASE_RENEW_DURATION.observe(self.monotonic() - started)
        return True

    async def step(self) -> StepResult:
        """Observe, stop work if needed, report if changed, heartbeat if due. Never raises for I/O."""
        car = await self._observe()
        detected_at = self.monotonic()
        stopped = 0
        if car in (state.CarState.DRIVING, state.CarState.OFFLINE) and not self.interlock.engaged:
            reason = policy.Reason.NOT_PARKED if car is state.CarState.DRIVING else policy.Reason.OFFLINE
            stopped = self.interlock.stop_all(detected_at=detected_at, reason=reason.value)
        if car is not state.CarState.OFFLINE and car is not state.CarState.ASLEEP:
            self._count_energy()
        now = self.now()
        self._transition(car, now=now)
        departure = None
        if self.value is not None and car is not state.CarState.OFFLINE:
            departure = state.predicted_departure(
                self.value, self.history, now=now, min_confidence=self.policy.departure_min_confidence
            )
        energy = self.energy.used_on(now=now, tz=self.policy.tz)
        verdict = policy.evaluate(
            self.policy,
            car=car,
            value=None if car is state.CarState.OFFLINE else self.value,
            computing=self.eligible,
            departure=departure,
            energy_used_kwh=energy,
            now=now,
        )
        stopped += self._set_eligible(verdict, detected_at=detected_at)
        observation = status.Observation(
            car=car,
            value=self.value,
            departure=departure,
            energy_used_today_kwh=energy,
            region=self.region,
        )
        patched = await self._report(status.build(observation, self.reported, now=now, limits=self.limits))
        renewed = await self.heartbeat()
        return StepResult(
            car=car,
            eligibility=verdict,
            departure=departure,
            patched=patched,
            renewed=renewed,
            stopped=stopped,
        )

    async def run(self, *, stop: asyncio.Event, poll_seconds: float = 0.1) -> None:
        """Step every ``poll_seconds`` until ``stop`` is set (the real car's driver)."""
        while not stop.is_set():
            await self.step()
            try:
                await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
            except TimeoutError:
                continue
