"""Large input tensors handed to Triton in shared memory, not inside the gRPC message.

Why this exists: Curbside's targets (docs/design.md) allow the Triton path at most 5 % of the
in-process throughput, and a worker's batches are large (a seti unit's batch of 4 spectrograms
at the full shape is 8 MiB of int8 voltages). Sent inside the gRPC message, every byte is
serialized by the client, received and parsed by the server, and only then copied to the Python
backend: about 1.5 ms per MiB on a car's CPU, 0.945x of in-process for seti at the full shape
(bench/triton_vs_torch.py). The worker and ``tritonserver`` share the pod's ``/dev/shm`` (the
containers of a pod share its IPC namespace), so the worker writes each large input once into a
POSIX shared-memory region registered with Triton (its system shared-memory extension) and the
request names the region instead.

One region per request in flight (``slot``), each holding every large input of a batch back
to back, grown when a batch needs more. A server that cannot open the region (another IPC
namespace, a server without the extension) makes ``open`` return ``None``: the worker then
sends the tensors inside the message as before. Small inputs (under ``MIN_BYTES``) and text
always go inside the message: for them the extra registration is not worth it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import tritonclient.grpc as grpcclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

log = logging.getLogger(__name__)

MIN_BYTES = 64 * 1024  # smaller inputs go inside the gRPC message
ALIGN = 64  # each input starts on a cache line


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class Regions:
    """The shared-memory regions of one ``TritonClient``: ``slots`` of them, created on use."""

    def __init__(self, client: grpcclient.InferenceServerClient, slots: int) -> None:
        self.client = client
        self.prefix = f"curbside-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.handles: list[Any] = [None] * slots
        self.sizes = [0] * slots

    @classmethod
    def open(cls, client: grpcclient.InferenceServerClient, slots: int) -> Regions | None:
        """Regions for ``slots`` requests in flight if the server can use them, else ``None``
        (checked once, with a small region the server must open)."""
        regions = cls(client, slots)
        try:
            regions._grow(0, ALIGN)
        except (InferenceServerException, shm.SharedMemoryException, OSError) as error:
            regions.close()
            log.warning("Triton cannot read this worker's shared memory (%s): tensors go over gRPC", error)
            return None
        return regions

    def _name(self, slot: int) -> str:
        return f"{self.prefix}-{slot}"

    def _drop(self, slot: int) -> None:
        handle, self.handles[slot], self.sizes[slot] = self.handles[slot], None, 0
        if handle is None:
            return
        try:
            self.client.unregister_system_shared_memory(self._name(slot))
        except InferenceServerException as error:  # the server is gone: nothing holds it
            log.debug("unregistering %s: %s", self._name(slot), error)
        shm.destroy_shared_memory_region(handle)

    def _grow(self, slot: int, size: int) -> None:
        self._drop(slot)
        name = self._name(slot)
        handle = shm.create_shared_memory_region(name, f"/{name}", size)
        self.handles[slot], self.sizes[slot] = handle, size
        self.client.register_system_shared_memory(name, f"/{name}", size)

    def inputs(self, slot: int, arrays: Mapping[str, npt.NDArray[Any]]) -> list[grpcclient.InferInput]:
        """``arrays`` as Triton inputs: the large ones written into ``slot``'s region."""
        large = {name: np.ascontiguousarray(a) for name, a in arrays.items() if _large(a)}
        need = sum(_aligned(a.nbytes) for a in large.values())
        if need > self.sizes[slot]:
            self._grow(slot, max(need, 2 * self.sizes[slot]))
        out, offset = [], 0
        for name, array in arrays.items():
            data = large.get(name)
            if data is None:
                out.append(message_input(name, array))
                continue
            tensor = grpcclient.InferInput(name, list(data.shape), np_to_triton_dtype(data.dtype))
            shm.set_shared_memory_region(self.handles[slot], [data], offset=offset)
            tensor.set_shared_memory(self._name(slot), data.nbytes, offset=offset)
            out.append(tensor)
            offset += _aligned(data.nbytes)
        return out

    def close(self) -> None:
        for slot in range(len(self.handles)):
            self._drop(slot)


def _large(array: npt.NDArray[Any]) -> bool:
    return array.dtype != np.object_ and array.nbytes >= MIN_BYTES


def message_input(name: str, array: npt.NDArray[Any]) -> grpcclient.InferInput:
    """One input carried inside the gRPC message (text as Triton's BYTES)."""
    dtype = "BYTES" if array.dtype == np.object_ else np_to_triton_dtype(array.dtype)
    tensor = grpcclient.InferInput(name, list(array.shape), dtype)
    tensor.set_data_from_numpy(np.ascontiguousarray(array) if dtype != "BYTES" else array)
    return tensor
