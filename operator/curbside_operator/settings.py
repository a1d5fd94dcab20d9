"""The operator's configuration: one typed object, read from ``CURBSIDE_*`` environment variables.

Why this exists: every knob that changes the operator's behaviour (how long a silent car is
trusted, when a mass silence counts as a partition) lives here with its unit, default and the
reason for that default, so the Helm chart, the tests and the docs refer to one place.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pydantic

ENV_PREFIX = "CURBSIDE_"


class OperatorConfig(pydantic.BaseModel):
    """Operator settings; ``OperatorConfig.from_env()`` reads ``CURBSIDE_<FIELD>`` overrides."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    lease_namespace: str = pydantic.Field(
        "curbside-cars",
        description="Namespace of the cars' Leases (one per car, named like the car).",
    )
    car_lease_grace_seconds: float = pydantic.Field(
        20.0,
        gt=0,
        description=(
            "Seconds without a Lease renewal before a car is Offline and its work moves. Agents renew "
            "every 10 s, so 20 s is two missed renewals: fast enough to beat Kubernetes' ~6 min, slow "
            "enough that one dropped request does not move work."
        ),
    )
    partition_threshold: float = pydantic.Field(
        0.55,
        gt=0,
        le=1,
        description=(
            "Share of recently alive cars that, silent at once, means a control-plane partition rather "
            "than departures (Kubernetes' --unhealthy-zone-threshold is the same 0.55)."
        ),
    )
    partition_settle_seconds: float | None = pydantic.Field(
        None,
        gt=0,
        description=(
            "How much earlier than the grace period a silent car counts towards the partition "
            "check, so a mass silence is recognised before the first car of it would be marked "
            "Offline (cars fall silent up to one renewal period apart). Default: min(5 s, grace/2)."
        ),
    )
    partition_min_silent: int = pydantic.Field(
        3, ge=1, description="Never suspect a partition with fewer silent cars than this."
    )
    sweep_seconds: float = pydantic.Field(
        30.0,
        gt=0,
        description="Seconds between full re-evaluations of every car (level-based safety net).",
    )
    tick_seconds: float = pydantic.Field(
        0.25, gt=0, description="Longest wait of the fleet loop between looking for stale Leases."
    )
    write_concurrency: int = pydantic.Field(
        32,
        ge=1,
        description=(
            "Workers of the fleet loop (each has at most one API write in flight); "
            "also the job loop's concurrent pod creates and deletes."
        ),
    )
    expected_unit_seconds: float = pydantic.Field(
        600.0, gt=0, description="Assumed unit duration when judging whether a departure is too soon."
    )
    ledger_path: str = pydantic.Field(
        "/var/lib/curbside/ledger.sqlite3",
        description="The work-unit ledger's SQLite file (on the operator's volume; one writer).",
    )
    dispatcher_port: int = pydantic.Field(
        8470, ge=0, le=65535, description="Port the dispatcher's HTTP API listens on (0: not served)."
    )
    dispatcher_host: str = pydantic.Field("0.0.0.0", description="Address the dispatcher listens on.")
    dispatcher_url: str = pydantic.Field(
        "http://curbside-dispatcher.curbside-system.svc:8470",
        description="The dispatcher's URL as workers on cars reach it (goes into every pod).",
    )
    worker_image: str = pydantic.Field(
        "ghcr.io/curbside/worker:0.1.0", description="Image of the worker container of inference pods."
    )
    models: str = pydantic.Field(
        "seti-spike-search,minilm-embed",
        description=(
            "Models the worker image's built-in Triton repository serves (comma-separated). A job "
            "naming another model without its own spec.model.repository fails with ModelNotFound."
        ),
    )
    departure_lead_seconds: float = pydantic.Field(
        60.0,
        ge=0,
        description="A predicted departure this close moves the car's work now, before the car moves.",
    )
    slots_per_car: int = pydantic.Field(1, ge=1, description="Curbside pods one car runs at once.")
    job_tick_seconds: float = pydantic.Field(
        0.5, gt=0, description="Longest wait of the job loop between rounds (car events wake it sooner)."
    )
    status_interval_seconds: float = pydantic.Field(
        2.0, ge=0, description="Shortest time between two status writes of one job (a throttled summary)."
    )
    metrics_port: int = pydantic.Field(
        0, ge=0, le=65535, description="Port of the Prometheus /metrics endpoint (0: not served)."
    )
    metrics_host: str = pydantic.Field(
        "127.0.0.1",
        description=(
            "Address the /metrics endpoint listens on: loopback for a local run; the chart sets "
            "0.0.0.0 so Prometheus reaches it through the metrics Service."
        ),
    )

    @property
    def model_names(self) -> frozenset[str]:
        return frozenset(m.strip() for m in self.models.split(",") if m.strip())

    @property
    def car_lease_grace(self) -> timedelta:
        return timedelta(seconds=self.car_lease_grace_seconds)

    @property
    def partition_silence(self) -> timedelta:
        """Lease age from which a car counts as silent in the partition check."""
        settle = self.partition_settle_seconds or min(5.0, self.car_lease_grace_seconds / 2)
        return timedelta(seconds=max(0.0, self.car_lease_grace_seconds - settle))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OperatorConfig:
        """Settings from ``CURBSIDE_<UPPER_FIELD_NAME>`` variables; unknown ones are ignored."""
        env = os.environ if environ is None else environ
        values = {
            name: env[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in env
        }
        return cls.model_validate(values)
