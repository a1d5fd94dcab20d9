"""The worker's Triton side: readiness over gRPC health, and batched, cancellable inference.

Why this exists: the worker sits next to ``tritonserver`` in the inference pod and reaches it
only through ``tritonclient`` over gRPC (docs/workloads.md). Two things matter beyond a plain call:

- Readiness: the pod's containers start together and Triton needs seconds (PyTriton) to
  minutes (a large model on a car) before it serves, so the worker waits on gRPC health
  (server ready, then each model ready) before it leases anything: a leased unit should never
  wait for a server.
- Stopping at once: when the car leaves Park the interlock sends SIGTERM and the worker must
  stop computing now, not after the current batch (``curbside_agent.interlock``). Requests go out with
  ``async_infer``, up to ``inflight`` at a time (so transport overlaps compute, as Triton's
  docs advise for throughput), and every outstanding call is cancelled the moment the
  caller's ``abort()`` says so.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from curbside_worker import shm

Arrays = dict[str, npt.NDArray[Any]]
POLL_SECONDS = 0.1


class Aborted(Exception):
    """``abort()`` became true while requests were in flight; they were cancelled."""


class TritonUnavailable(Exception):
    """Triton did not answer (not up yet, restarting, or gone)."""


class TritonClient:
    """A gRPC connection to one Triton server (``host:port``)."""

    def __init__(self, url: str, *, request_timeout: float = 300.0, shared_memory: bool = True) -> None:
        """``shared_memory``: hand large inputs over in shared memory (``worker.shm``) when the
        server can read it; the worker's server runs in the same pod."""
        self.url = url
        self.request_timeout = request_timeout
        self._client = grpcclient.InferenceServerClient(url)
        self._shared_memory = shared_memory
        self._regions: shm.Regions | None = None

    @property
    def uses_shared_memory(self) -> bool:
        """Whether large inputs went through shared memory (known after the first batches)."""
        return self._regions is not None

    def _inputs_for(self, slots: int) -> Callable[[int, Arrays], list[grpcclient.InferInput]]:
        """How a batch becomes inputs: in shared memory (one region per slot), or in the message."""
        if self._shared_memory and (self._regions is None or len(self._regions.handles) < slots):
            if self._regions is not None:
                self._regions.close()
            self._regions = shm.Regions.open(self._client, slots)
            self._shared_memory = self._regions is not None  # checked once: not again each call
        if self._regions is not None:
            return self._regions.inputs
        return lambda _, arrays: [shm.message_input(name, a) for name, a in arrays.items()]

    def ready(self, models: Iterable[str]) -> bool:
        """Whether the server and every model in ``models`` say they are ready."""
        try:
            if not self._client.is_server_ready(client_timeout=5.0):
                return False
            return all(self._client.is_model_ready(name, client_timeout=5.0) for name in models)
        except InferenceServerException:
            return False

    def wait_ready(
        self,
        models: Sequence[str],
        *,
        timeout: float,
        stop: threading.Event | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        """Return once ready; ``TimeoutError`` after ``timeout`` s, ``Aborted`` if ``stop`` is set,
        ``TritonUnavailable`` as soon as ``alive()`` (e.g. "the server process runs") is false."""
        waiter = stop or threading.Event()
        give_up = time.monotonic() + timeout
        while not self.ready(models):
            if alive is not None and not alive():
                raise TritonUnavailable(f"Triton at {self.url} exited before it was ready")
            if time.monotonic() > give_up:
                raise TimeoutError(f"Triton at {self.url} not ready for {list(models)} after {timeout:.0f}s")
            if waiter.wait(0.25):
                raise Aborted("stopped while waiting for Triton")

    def infer_batches(
        self,
        model: str,
        batches: Iterable[Arrays],
        *,
        outputs: Sequence[str],
        inflight: int = 2,
        abort: Callable[[], bool] = lambda: False,
    ) -> Arrays:
        """Send every batch (at most ``inflight`` outstanding) and return the outputs
        concatenated in batch order. ``Aborted`` cancels what is outstanding."""
        done: queue.Queue[tuple[int, Any, Any]] = queue.Queue()
        pending = iter(enumerate(batches))
        calls: dict[int, Any] = {}
        results: dict[int, Arrays] = {}
        requested = [grpcclient.InferRequestedOutput(name) for name in outputs]
        slots = max(inflight, 1)
        inputs = self._inputs_for(slots)
        free, slot_of = list(range(slots)), {}  # a slot's region is rewritten only once answered

        def send() -> bool:
            item = next(pending, None)
            if item is None:
                return False
            index, arrays = item
            slot_of[index] = free.pop()

            def callback(result: Any, error: Any, index: int = index) -> None:
                done.put((index, result, error))

            calls[index] = self._client.async_infer(
                model,
                inputs(slot_of[index], arrays),
                callback,
                outputs=requested,
                client_timeout=self.request_timeout,
            )
            return True

        try:
            while len(calls) < slots and send():
                pass
            while calls:
                if abort():
                    raise Aborted("inference aborted")
                try:
                    index, result, error = done.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                calls.pop(index)
                free.append(slot_of.pop(index))
                if error is not None:
                    raise _unavailable_or(error)
                results[index] = {name: result.as_numpy(name) for name in outputs}
                if not abort():
                    send()
        finally:
            for call in calls.values():
                call.cancel()
        if not results:
            return {name: np.zeros((0,)) for name in outputs}
        ordered = [results[i] for i in sorted(results)]
        return {name: np.concatenate([part[name] for part in ordered]) for name in outputs}

    def close(self) -> None:
        if self._regions is not None:
            self._regions.close()
            self._regions = None
        self._client.close()

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _unavailable_or(error: Any) -> Exception:
    status = str(getattr(error, "status", lambda: "")() or "")
    if "UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status:
        return TritonUnavailable(str(error))
    return error if isinstance(error, Exception) else RuntimeError(str(error))
