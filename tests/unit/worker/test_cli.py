"""The worker's command line and its small parts: configuration from flags and environment,
deadlines, backoff, and a worker that never loads torch."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from curbside_api.wire import parse_deadline
from curbside_worker import cli
from curbside_worker.dispatcher import Backoff


def test_configuration_comes_from_the_environment_and_flags_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {
        "CURBSIDE_DISPATCHER_URL": "http://dispatcher:8080",
        "CURBSIDE_JOB_NAMESPACE": "demo",
        "CURBSIDE_JOB_NAME": "seti",
        "CURBSIDE_CAR": "car-7",
        "CURBSIDE_OWNER": "bob",
        "CURBSIDE_MODEL": "seti-spike-search",
        "CURBSIDE_BATCH_SIZE": "4",
        "CURBSIDE_MAX_UNITS": "9",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    token = tmp_path / "token"
    token.write_text("projected-token\n")
    config = cli.config_from(cli.parser().parse_args([f"--token-file={token}", "--car=car-8"]))
    assert (config.dispatcher_url, config.namespace, config.job) == ("http://dispatcher:8080", "demo", "seti")
    assert (config.car, config.owner, config.token) == ("car-8", "bob", "")
    assert config.token_file == str(token)  # kept as a file: the worker re-reads it as it rotates
    assert (config.batch_size, config.max_units, config.triton_url) == (4, 9, "127.0.0.1:8001")


def test_metrics_are_off_by_default_and_on_loopback_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    args = cli.parser().parse_args([])
    assert (args.metrics_port, args.metrics_host) == (0, "127.0.0.1")
    monkeypatch.setenv("CURBSIDE_METRICS_PORT", "9465")
    monkeypatch.setenv("CURBSIDE_METRICS_HOST", "10.1.2.3")  # the pod IP, from the downward API
    args = cli.parser().parse_args([])
    assert (args.metrics_port, args.metrics_host) == (9465, "10.1.2.3")


def test_missing_settings_are_named_and_exit_64(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--car=car-1", "--dispatcher-url=http://x"]) == 64
    error = capsys.readouterr().err
    for flag in ("--job-namespace", "--job-name", "--token or --token-file", "--model"):
        assert flag in error
    assert "--car" not in error
    assert "--dispatcher-url" not in error


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05+00:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (1767323045, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("soon", None),
        (None, None),
        (True, None),
    ],
)
def test_deadlines_are_read_as_rfc3339_or_epoch_seconds(value: object, expected: datetime | None) -> None:
    assert parse_deadline(value) == expected


def test_backoff_doubles_its_ceiling_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(initial=0.2, maximum=2.0, rng=random.Random(1))
    waits = [backoff.next() for _ in range(8)]
    ceilings = [min(2.0, 0.2 * 2**n) for n in range(8)]
    assert all(0 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert backoff.failures == 8
    backoff.reset()
    assert backoff.next() <= 0.2


def test_backoff_draws_full_jitter_from_zero_to_the_ceiling() -> None:
    """Full jitter: a wait may be anywhere in [0, ceiling], so workers that failed together
    spread out over the whole interval. Equal jitter (never below half the ceiling) fails this."""
    backoff = Backoff(initial=1.0, maximum=1.0, rng=random.Random(7))
    waits = [backoff.next() for _ in range(200)]
    assert all(0.0 <= w <= 1.0 for w in waits)
    assert min(waits) < 0.1
    assert sum(w < 0.5 for w in waits) > 60  # about half of them, for a uniform draw


def test_the_worker_never_imports_torch_or_transformers() -> None:
    code = (
        "import sys, curbside_worker.cli, curbside_worker.runner;"
        "heavy = sorted(m for m in ('torch', 'transformers', 'pytriton') if m in sys.modules);"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
