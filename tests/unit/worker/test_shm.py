"""How the worker packs a batch into its shared-memory regions, and what it does when the
server cannot read them: no server needed, the regions are real POSIX shared memory."""

from __future__ import annotations

import glob
from typing import Any

import numpy as np
import tritonclient.utils.shared_memory as tshm
from tritonclient.utils import InferenceServerException

from curbside_worker import shm


class Server:
    """What ``Regions`` asks of a gRPC client: registrations, kept or refused."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.registered: dict[str, int] = {}

    def register_system_shared_memory(self, name: str, key: str, byte_size: int) -> None:
        if self.refuse:
            raise InferenceServerException(f"Unable to open shared memory region: '{key}'")
        self.registered[name] = byte_size

    def unregister_system_shared_memory(self, name: str) -> None:
        self.registered.pop(name, None)


def leftovers(regions: shm.Regions) -> list[str]:
    return glob.glob(f"/dev/shm/{regions.prefix}-*")


def test_large_inputs_go_into_the_slots_region_back_to_back_and_small_ones_in_the_message() -> None:
    server = Server()
    regions = shm.Regions.open(server, 2)  # type: ignore[arg-type]
    assert regions is not None
    voltages = np.arange(3 * 100_000, dtype=np.int64).reshape(3, 100_000).astype(np.int8)
    more = np.full((2, 50_001), 7, dtype=np.int8)  # not a multiple of the alignment
    drift = np.array([[16], [16], [16]], dtype=np.int32)
    try:
        inputs = regions.inputs(1, {"VOLTAGES": voltages, "MORE": more, "MAX_DRIFT": drift})
        by = {i.name(): i for i in inputs}
        assert set(by) == {"VOLTAGES", "MORE", "MAX_DRIFT"}
        first, second = (by[n]._get_tensor().parameters for n in ("VOLTAGES", "MORE"))
        assert first["shared_memory_region"].string_param == f"{regions.prefix}-1"
        assert first["shared_memory_offset"].int64_param == 0
        assert second["shared_memory_offset"].int64_param == 300_032  # 300,000 rounded up to 64
        assert not by["MAX_DRIFT"]._get_tensor().parameters  # small: inside the message
        assert by["MAX_DRIFT"]._get_content() is not None
        handle = regions.handles[1]
        back = tshm.get_contents_as_numpy(handle, np.int8, [3, 100_000], offset=0)
        np.testing.assert_array_equal(back, voltages)
        after = tshm.get_contents_as_numpy(handle, np.int8, [2, 50_001], offset=300_032)
        np.testing.assert_array_equal(after, more)
        assert server.registered[f"{regions.prefix}-1"] >= 300_032 + 100_002
        assert regions.sizes[0] == shm.ALIGN  # the other slot kept only the first check's region
    finally:
        regions.close()
    assert server.registered == {}
    assert leftovers(regions) == []


def test_a_slot_grows_for_a_bigger_batch_and_keeps_its_name() -> None:
    server = Server()
    regions = shm.Regions.open(server, 1)  # type: ignore[arg-type]
    assert regions is not None
    try:
        regions.inputs(0, {"X": np.zeros(100_000, dtype=np.int8)})
        small = regions.sizes[0]
        regions.inputs(0, {"X": np.ones(1_000_000, dtype=np.int8)})
        assert regions.sizes[0] >= 1_000_000 > small
        assert list(server.registered) == [f"{regions.prefix}-0"]
        back = tshm.get_contents_as_numpy(regions.handles[0], np.int8, [1_000_000])
        assert back.min() == back.max() == 1
    finally:
        regions.close()


def test_a_server_that_cannot_open_the_region_means_the_message_path_and_nothing_left_behind() -> None:
    before = set(glob.glob("/dev/shm/curbside-*"))
    assert shm.Regions.open(Server(refuse=True), 2) is None  # type: ignore[arg-type]
    assert set(glob.glob("/dev/shm/curbside-*")) == before


def test_text_is_never_put_in_shared_memory() -> None:
    server = Server()
    regions = shm.Regions.open(server, 1)  # type: ignore[arg-type]
    assert regions is not None
    text: Any = np.array([[b"x" * 100_000]], dtype=np.object_)
    try:
        (tensor,) = regions.inputs(0, {"TEXT": text})
        assert tensor.datatype() == "BYTES"
        assert not tensor._get_tensor().parameters
    finally:
        regions.close()
