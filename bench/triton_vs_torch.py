"""Throughput of the Triton path against in-process torch, for both workloads.

Why this exists: a car's worker reaches its model only through Triton (gRPC, dynamic batching,
PyTriton's or the Python backend's copies). Curbside's target (docs/design.md, Numbers) is that
this costs at most 5 %: Triton path >= 0.95x the items per second of calling the same torch
code in-process with the same batches. Well-configured Triton adds about 0.1-0.5 ms per request
and PyTriton's extra copy about 5 % latency; this measures ours.

Method: one Triton server (both models) in a child process: by default ``tritonserver`` on the
model repository a car's pod loads (Python backend, ``--server repository``), or PyTriton as
the test bed runs it (``--server pytriton``); the same pre-built batches go
(a) straight into ``seti_detector.detect`` / ``MiniLM.embed`` in this process, and (b) through
``TritonClient.infer_batches`` (gRPC), one request at a time, so both sides compute one batch
of the same size at a time on one torch thread: the ratio is the cost of the Triton path. (With
two requests in flight, as the worker runs, the server computes two batches at once, or merges
them into one larger batch, and on a shared machine two runnable threads also get twice the CPU
share of one: that figure is reported as ``triton_pipelined_items_per_s``, not as the ratio.)
Runs alternate in-process / Triton ``--repeats`` times after a warm-up, and the median of each
is reported, so drift in the machine's load hits both sides alike. Input generation is outside
the timed region on both sides.

Run: ``.venv/bin/python bench/triton_vs_torch.py`` (``--quick`` for a smaller run; ``--json``
to keep the figures).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curbside_testbed import serve
from curbside_worker.triton import TritonClient
from curbside_worker.workloads import catalog, minilm, seti, seti_detector


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def seti_batches(*, batch: int, batches: int, params: dict[str, str]) -> list[dict[str, Any]]:
    workload = catalog.workload(seti.MODEL_NAME)
    spec = {"seed": 1420405752, "unit": 0, "itemsPerUnit": batch * batches, "parameters": params}
    return list(workload.batches(workload.prepare(spec), batch_size=batch))


def minilm_batches(*, batch: int, batches: int) -> list[dict[str, Any]]:
    workload = catalog.workload(minilm.MODEL_NAME)
    spec = {"seed": 7, "unit": 0, "itemsPerUnit": batch * batches}
    return list(workload.batches(workload.prepare(spec), batch_size=batch))


def timed(run: Callable[[], int]) -> float:
    """Items per second of one call of ``run`` (which returns how many items it did)."""
    started = time.perf_counter()
    items = run()
    return items / (time.perf_counter() - started)


def compare(
    name: str,
    *,
    inprocess: Callable[[], int],
    triton: Callable[[], int],
    pipelined: Callable[[], int],
    repeats: int,
) -> dict[str, Any]:
    inprocess()  # warm-up: caches, allocator, the server's first batch
    triton()
    local, served, overlapped = [], [], []
    for _ in range(repeats):
        local.append(timed(inprocess))
        served.append(timed(triton))
        overlapped.append(timed(pipelined))
    row: dict[str, Any] = {
        "model": name,
        "inprocess_items_per_s": statistics.median(local),
        "triton_items_per_s": statistics.median(served),
        "triton_pipelined_items_per_s": statistics.median(overlapped),
        "inprocess_runs": local,
        "triton_runs": served,
        "triton_pipelined_runs": overlapped,
    }
    # Each Triton run is paired with the in-process run just before it, so a burst of load
    # from the machine's other tenants weighs on one pair, not on one side's median.
    row["ratio"] = statistics.median(s / i for s, i in zip(served, local, strict=True))
    row["ratio_of_medians"] = row["triton_items_per_s"] / row["inprocess_items_per_s"]
    return row


@contextlib.contextmanager
def _server(kind: str, threads: int) -> Iterator[serve.ServerProcess]:
    """A started Triton server of ``kind``, its torch on ``threads`` intra-op threads."""
    with tempfile.TemporaryDirectory(prefix="curbside-bench-triton-") as tmp:
        if kind == "pytriton":
            server = serve.ServerProcess.pytriton(
                grpc_port=free_port(),
                http_port=free_port(),
                extra_args=[
                    "--exit-timeout=1",
                    f"--log-file={Path(tmp) / 'pytriton.log'}",
                    "--max-queue-delay-us=0",
                    f"--torch-threads={threads}",
                ],
            )
        else:
            server = serve.ServerProcess.repository(
                workdir=Path(tmp), grpc_port=free_port(), http_port=free_port()
            )
            assert server.env is not None
            server.env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op default in the stub
        server.start(timeout=240)
        try:
            yield server
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, fewer batches")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seti-batch", type=int, default=4, help="spectrograms per request (a unit)")
    parser.add_argument("--minilm-batch", type=int, default=32, help="sentences per request")
    parser.add_argument(
        "--inflight", type=int, default=2, help="requests outstanding in the pipelined run (the worker's)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads, both sides")
    parser.add_argument(
        "--server",
        choices=("repository", "pytriton"),
        default="repository",
        help="tritonserver on the cars' model repository (default), or PyTriton as in the test bed",
    )
    parser.add_argument(
        "--no-shared-memory",
        action="store_true",
        help="send the tensors inside the gRPC messages, not in shared memory (the worker's default)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    shape = {"channels": "4096", "timeSteps": "256", "signalsPerUnit": "2", "snrDb": "12"}
    if args.quick:
        shape = {"channels": "1024", "timeSteps": "128", "maxDrift": "16", "signalsPerUnit": "2"}
    seti_in = seti_batches(batch=args.seti_batch, batches=20 if args.quick else 5, params=shape)
    text_in = minilm_batches(batch=args.minilm_batch, batches=3 if args.quick else 8)
    params = seti.SetiParams.from_parameters(shape)
    model = minilm.MiniLM()

    def seti_local() -> int:
        for b in seti_in:
            seti_detector.detect(b["VOLTAGES"], max_drift=params.max_drift, threshold=params.threshold_snr)
        return sum(len(b["VOLTAGES"]) for b in seti_in)

    def text_local() -> int:
        for b in text_in:
            model.embed([row[0].decode() for row in b["TEXT"]])
        return sum(len(b["TEXT"]) for b in text_in)

    rows = []
    shared = not args.no_shared_memory
    with (
        _server(args.server, args.threads) as server,
        TritonClient(server.grpc_url, shared_memory=shared) as client,
    ):

        def through(name: str, batches: list[dict[str, Any]], inflight: int) -> Callable[[], int]:
            outputs = catalog.workload(name).outputs

            def run() -> int:
                out = client.infer_batches(name, iter(batches), outputs=outputs, inflight=inflight)
                return len(out[outputs[0]])

            return run

        for name, local, batches in (
            (seti.MODEL_NAME, seti_local, seti_in),
            (minilm.MODEL_NAME, text_local, text_in),
        ):
            rows.append(
                compare(
                    name,
                    inprocess=local,
                    triton=through(name, batches, 1),
                    pipelined=through(name, batches, args.inflight),
                    repeats=args.repeats,
                )
            )
        used = client.uses_shared_memory

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"torch {torch.__version__}, {args.threads} torch threads each side; server: {args.server}; "
        f"shared memory: {'yes' if used else 'no'}; "
        f"pipelined: {args.inflight} in flight"
    )
    print(f"{'model':20} {'batch':>5} {'in-process/s':>13} {'Triton/s':>10} {'ratio':>6} {'pipelined/s':>12}")
    for row, batch in zip(rows, (args.seti_batch, args.minilm_batch), strict=True):
        row["batch"] = batch
        print(
            f"{row['model']:20} {batch:>5} {row['inprocess_items_per_s']:>13.2f} "
            f"{row['triton_items_per_s']:>10.2f} {row['ratio']:>6.3f} "
            f"{row['triton_pipelined_items_per_s']:>12.2f}"
        )
    if args.json:
        doc = {"shape": shape, "rows": rows, "server": args.server, "python": sys.version}
        doc["shared_memory"] = used
        args.json.write_text(json.dumps(doc, indent=2))
    return 0 if all(np.isfinite(row["ratio"]) for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
