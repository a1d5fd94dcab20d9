"""Serve the workloads with a real Triton server (PyTriton's bundled ``tritonserver``).

Why this exists: in the test bed and the demo there are no containers, yet the worker must
talk to a real Triton through ``tritonclient`` exactly as on a car (docs/workloads.md). PyTriton
starts the ``tritonserver`` binary it ships, with a Python-backend proxy per model that hands
each (dynamically batched) request to a callable in this process: the same detector and the
same MiniLM as the in-process reference, so served results can be checked against it.

On a car the pod's ``tritonserver`` container loads the model repository in ``repository/``
instead (Python backend, same code); see docs/workloads.md.

- ``start(models, grpc_port=..., http_port=...)``: a running ``pytriton.triton.Triton`` in this
  process (``stop()`` it).
- ``ServerProcess``: the same in a child process (``python -m curbside_testbed.serve``),
  started and stopped by tests, the benchmark and the simulator.
- ``main(argv)``: that child's command line; SIGTERM or SIGINT stop it.

The Python backend's stub links libpython; under pyenv that library is not on the loader's
path, and models fail to load (``_recursion_count``), so ``ensure_libpython`` puts the running
interpreter's ``LIBDIR`` on ``LD_LIBRARY_PATH`` before the server starts.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from curbside_testbed import procs
from curbside_worker.workloads import minilm, seti
from curbside_worker.workloads.specs import SPECS, minilm_infer, seti_infer, with_torch_threads

log = logging.getLogger(__name__)
DEFAULT_MODELS = (seti.MODEL_NAME, minilm.MODEL_NAME)


def ensure_libpython() -> None:
    """Put this interpreter's LIBDIR on LD_LIBRARY_PATH (for the Python backend stub)."""
    libdir = sysconfig.get_config_var("LIBDIR")
    current = os.environ.get("LD_LIBRARY_PATH", "")
    if libdir and libdir not in current.split(":"):
        os.environ["LD_LIBRARY_PATH"] = f"{libdir}:{current}" if current else libdir


def start(
    models: Sequence[str] = DEFAULT_MODELS,
    *,
    grpc_port: int,
    http_port: int,
    metrics_port: int | None = None,
    max_queue_delay_us: int = 0,
    exit_timeout_s: int = 5,
    log_file: Path | None = None,
    torch_threads: int | None = None,
) -> Any:
    """Start tritonserver on 127.0.0.1 with ``models`` bound; returns the running PyTriton ``Triton``."""
    ensure_libpython()
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    unknown = sorted(set(models) - set(SPECS))
    if unknown:
        raise ValueError(f"unknown models {unknown} (known: {', '.join(SPECS)})")
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=http_port,
        grpc_address="127.0.0.1",
        grpc_port=grpc_port,
        allow_metrics=metrics_port is not None,
        metrics_port=metrics_port,
        exit_timeout_secs=exit_timeout_s,
        log_file=log_file,
    )
    triton = Triton(config=config)
    for name in models:
        spec = SPECS[name]
        infer = seti_infer if name == seti.MODEL_NAME else minilm_infer(minilm.MiniLM())
        triton.bind(
            model_name=name,
            infer_func=batch(with_torch_threads(infer, torch_threads)),
            inputs=[Tensor(name=t.name, dtype=t.dtype, shape=t.shape) for t in spec.inputs],
            outputs=[Tensor(name=t.name, dtype=t.dtype, shape=t.shape) for t in spec.outputs],
            config=ModelConfig(
                max_batch_size=spec.max_batch_size,
                batcher=DynamicBatcher(max_queue_delay_microseconds=max_queue_delay_us),
            ),
            strict=True,
        )
    triton.run()
    log.info("tritonserver serving %s on grpc 127.0.0.1:%d", ", ".join(models), grpc_port)
    return triton


def repository_path() -> Path:
    """The Triton model repository for real cars (``config.pbtxt`` + Python-backend ``model.py``)."""
    import curbside_worker

    return Path(curbside_worker.__file__).resolve().parent / "repository"


def repository_command(
    *, repository: Path, workdir: Path, grpc_port: int, http_port: int
) -> tuple[list[str], dict[str, str]]:
    """argv and environment to run PyTriton's bundled ``tritonserver`` on a model repository,
    as the pod's ``tritonserver`` container does on a car: the Python backend with the stub for
    this interpreter, this environment's packages (``PATH`` leads the stub to them)."""
    import pytriton

    bundle = Path(pytriton.__file__).resolve().parent / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    backends = workdir / "backends"
    if not backends.exists():
        shutil.copytree(bundle / "backends", backends)
        shutil.copy(
            bundle / "python_backend_stubs" / version / "triton_python_backend_stub", backends / "python"
        )
    ensure_libpython()
    env = dict(os.environ)
    libs = Path(pytriton.__file__).resolve().parent.parent / "nvidia_pytriton.libs"
    env["LD_LIBRARY_PATH"] = f"{env['LD_LIBRARY_PATH']}:{libs}"
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    argv = [
        str(bundle / "bin" / "tritonserver"),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--allow-metrics=false",
        "--exit-timeout-secs=1",
        "--log-info=false",
    ]
    return argv, env


class ServerProcess:
    """A Triton server as a child process (its own process group), ready when started.

    ``ServerProcess.pytriton(...)`` runs ``python -m curbside_testbed.serve``;
    ``ServerProcess.repository(...)`` runs ``tritonserver`` on the real-car model repository.
    """

    def __init__(
        self, argv: Sequence[str], *, models: Sequence[str], grpc_port: int, env: dict[str, str] | None = None
    ) -> None:
        self.argv, self.models, self.env = list(argv), tuple(models), env
        self.grpc_url = f"127.0.0.1:{grpc_port}"
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def pytriton(
        cls,
        models: Sequence[str] = DEFAULT_MODELS,
        *,
        grpc_port: int,
        http_port: int,
        extra_args: Sequence[str] = (),
    ) -> ServerProcess:
        argv = [
            sys.executable,
            "-m",
            "curbside_testbed.serve",
            f"--models={','.join(models)}",
            f"--grpc-port={grpc_port}",
            f"--http-port={http_port}",
            *extra_args,
        ]
        return cls(argv, models=models, grpc_port=grpc_port)

    @classmethod
    def repository(
        cls, *, workdir: Path, grpc_port: int, http_port: int, repository: Path | None = None
    ) -> ServerProcess:
        root = repository or repository_path()
        argv, env = repository_command(
            repository=root, workdir=workdir, grpc_port=grpc_port, http_port=http_port
        )
        models = sorted(entry.name for entry in root.iterdir() if (entry / "config.pbtxt").is_file())
        return cls(argv, models=models, grpc_port=grpc_port, env=env)

    def start(self, *, timeout: float = 180.0) -> ServerProcess:
        from curbside_worker.triton import TritonClient

        self.process = procs.start(self.argv, env=self.env)
        try:
            with TritonClient(self.grpc_url) as client:
                client.wait_ready(self.models, timeout=timeout, alive=lambda: self.alive)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout: float = 30.0) -> int | None:
        """SIGTERM; SIGKILL after ``timeout``; then SIGKILL to anything left in its process group."""
        if self.process is None:
            return None
        # A Python-backend stub that outlived tritonserver's exit timeout is still in the
        # process group tritonserver leads: procs.stop ends that group too.
        return procs.stop(self.process, timeout=timeout)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="curbside-serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model names")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=None, help="unset: no metrics endpoint")
    parser.add_argument(
        "--max-queue-delay-us", type=int, default=0, help="dynamic batching delay (0: merge only what queued)"
    )
    parser.add_argument("--exit-timeout", type=int, default=5, help="seconds for in-flight requests at exit")
    parser.add_argument("--log-file", type=Path, default=None, help="tritonserver's log (unset: stderr)")
    parser.add_argument("--verbose", action="store_true", help="PyTriton's own INFO logs too")
    parser.add_argument("--torch-threads", type=int, default=None, help="intra-op threads per model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.verbose:
        logging.getLogger("pytriton").setLevel(logging.WARNING)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    triton = start(
        [name for name in args.models.split(",") if name],
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        max_queue_delay_us=args.max_queue_delay_us,
        exit_timeout_s=args.exit_timeout,
        log_file=args.log_file,
        torch_threads=args.torch_threads,
    )
    try:
        while not stop.wait(1.0):
            if not triton.is_alive():
                log.error("tritonserver exited")
                return 1
    finally:
        triton.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
