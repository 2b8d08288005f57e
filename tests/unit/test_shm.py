"""Shared memory: the sender's segment pool, receivers' read-only mappings, leases."""

from __future__ import annotations

import gc
import os
import threading
import uuid
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import shm_entries as shared_shm_entries

from doradus._wire.values import decode_value, plan_value
from doradus.backends._segments import MIN_SEGMENT, Lease, Mapping, Segment, SegmentPool

DEV_SHM = "/dev/shm"


def shm_entries() -> set[str]:
    # multiprocessing semaphores (sem.*) from unrelated processes may come and go
    return shared_shm_entries()


@pytest.fixture
def no_dev_shm() -> Iterator[None]:
    """Fail if anything appears in /dev/shm during the test (checked again at the end)."""
    before = shm_entries()
    yield
    assert shm_entries() <= before, "a segment appeared in /dev/shm"


@pytest.fixture
def pool(no_dev_shm: None) -> Iterator[SegmentPool]:
    pool = SegmentPool(f"doradus-unit-{uuid.uuid4().hex[:8]}")
    yield pool
    pool.close()


def receiver_mapping(seg: Segment) -> Mapping:
    """Map ``seg`` as a receiver does: from its own descriptor, closed once mapped."""
    fd = os.dup(seg.fd)
    try:
        return Mapping(fd, seg.size)
    finally:
        os.close(fd)


def collect() -> None:
    gc.collect()
    gc.collect()


# --- acquiring and reusing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nbytes", "size"),
    [
        (0, MIN_SEGMENT),
        (1, MIN_SEGMENT),
        (MIN_SEGMENT, MIN_SEGMENT),
        (MIN_SEGMENT + 1, 2 * MIN_SEGMENT),
        (100_000, 131_072),
        (1 << 20, 1 << 20),
        ((1 << 20) + 1, 1 << 21),
    ],
)
def test_segments_come_in_power_of_two_size_classes(pool: SegmentPool, nbytes: int, size: int) -> None:
    seg = pool.acquire(nbytes)

    assert seg.size == size
    assert len(seg.view) == size
    assert os.fstat(seg.fd).st_size == size


def test_an_acquired_segment_is_reserved_until_its_count_is_set(pool: SegmentPool) -> None:
    first = pool.acquire(1000)

    assert first.pending == 1
    assert not first.free
    second = pool.acquire(1000)
    assert second is not first
    assert second.id != first.id


def test_a_segment_is_reused_only_once_free(pool: SegmentPool) -> None:
    seg = pool.acquire(1000)
    pool.set_pending(seg, 2)
    assert pool.acquire(1000) is not seg

    pool.release(seg.id)
    assert seg.pending == 1
    assert not seg.free
    pool.release(seg.id)
    assert seg.free

    assert pool.acquire(1000) is seg


def test_set_pending_zero_frees_at_once(pool: SegmentPool) -> None:
    seg = pool.acquire(10)
    pool.set_pending(seg, 0)

    assert seg.free
    assert pool.acquire(10) is seg


def test_add_pending_counts_more_holders(pool: SegmentPool) -> None:
    seg = pool.acquire(10)
    pool.set_pending(seg, 1)
    pool.add_pending(seg, 2)

    assert seg.pending == 3
    pool.release(seg.id, 3)
    assert seg.free


def test_release_never_goes_below_zero_and_ignores_unknown_ids(pool: SegmentPool) -> None:
    seg = pool.acquire(10)
    pool.set_pending(seg, 1)

    pool.release(seg.id, 5)
    pool.release(seg.id)
    pool.release(12345)

    assert seg.pending == 0
    pool.add_pending(seg, 1)
    assert seg.pending == 1


def test_a_much_larger_free_segment_is_not_spent_on_a_small_message(pool: SegmentPool) -> None:
    big = pool.acquire(1 << 20)
    pool.set_pending(big, 0)

    small = pool.acquire(10)

    assert small is not big
    assert small.size == MIN_SEGMENT


def test_the_smallest_fitting_free_segment_is_chosen(pool: SegmentPool) -> None:
    segments = [pool.acquire(n) for n in (4 * MIN_SEGMENT, 2 * MIN_SEGMENT, 3 * MIN_SEGMENT)]
    for seg in segments:
        pool.set_pending(seg, 0)

    chosen = pool.acquire(MIN_SEGMENT + 1)

    assert chosen.size == 2 * MIN_SEGMENT
    assert chosen in segments


def test_statistics_count_segments_bytes_and_those_in_use(pool: SegmentPool) -> None:
    assert pool.statistics() == {"segments": 0, "bytes": 0, "in_use": 0, "descriptors": 0}
    busy = pool.acquire(10)
    idle = pool.acquire(MIN_SEGMENT + 1)
    pool.set_pending(idle, 0)

    assert pool.statistics() == {"segments": 2, "bytes": 3 * MIN_SEGMENT, "in_use": 1, "descriptors": 2}
    pool.set_pending(busy, 0)
    assert pool.statistics()["in_use"] == 0


def test_concurrent_acquirers_never_share_a_segment(pool: SegmentPool) -> None:
    held: set[int] = set()
    lock = threading.Lock()
    clashes: list[int] = []
    start = threading.Barrier(8)

    def work(me: int) -> None:
        start.wait(10)
        for _ in range(300):
            seg = pool.acquire(1000)
            with lock:
                if seg.id in held:
                    clashes.append(seg.id)
                held.add(seg.id)
            seg.view[0] = me  # another holder would overwrite this while we hold the segment
            os.sched_yield()
            if seg.view[0] != me:
                clashes.append(seg.id)
            with lock:
                held.discard(seg.id)
            pool.set_pending(seg, 0)

    threads = [threading.Thread(target=work, args=(me,)) for me in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not any(thread.is_alive() for thread in threads)
    assert clashes == []
    assert pool.statistics()["in_use"] == 0
    assert pool.statistics()["segments"] <= 8


# --- allocate ------------------------------------------------------------------------------------


def test_allocate_gives_a_writable_uint8_array_in_a_segment(pool: SegmentPool) -> None:
    array = pool.allocate(1000)
    array[:] = 7

    assert array.dtype == np.uint8
    assert array.nbytes == 1000
    assert array.flags.writeable
    seg = pool.find(array.ctypes.data, array.nbytes)
    assert seg is not None
    assert seg.user_held
    assert seg.pending == 0
    assert seg.view[:1000] == b"\x07" * 1000
    assert pool.has_user_segments


def test_an_allocated_segment_returns_to_the_pool_once_the_array_is_gone(pool: SegmentPool) -> None:
    array = pool.allocate(1000)
    seg = pool.find(array.ctypes.data, 1)
    assert seg is not None
    assert pool.acquire(1000) is not seg

    del array
    collect()

    assert not seg.user_held
    assert seg.free
    assert not pool.has_user_segments
    assert pool.acquire(1000) is seg


def test_an_allocated_segment_waits_for_the_array_and_every_receiver(pool: SegmentPool) -> None:
    array = pool.allocate(1000)
    seg = pool.find(array.ctypes.data, 1000)
    assert seg is not None
    pool.add_pending(seg, 2)  # sent zero-copy to two receivers

    del array
    collect()
    assert not seg.user_held
    assert not seg.free

    pool.release(seg.id)
    assert not seg.free
    pool.release(seg.id)
    assert seg.pending == 0
    assert seg.free
    assert pool.acquire(1000) is seg


def test_views_of_an_allocated_array_keep_its_segment_held(pool: SegmentPool) -> None:
    array = pool.allocate(12)
    seg = pool.find(array.ctypes.data, 12)
    assert seg is not None
    image = array.reshape(3, 4)
    arrow = pa.array(array[4:])
    del array
    collect()
    assert seg.user_held

    del image
    collect()
    assert seg.user_held  # the Arrow array still views the memory

    del arrow
    collect()
    assert not seg.user_held


def test_find_locates_a_user_held_segment_by_address(pool: SegmentPool) -> None:
    array = pool.allocate(100)
    seg = pool.find(array.ctypes.data, 100)
    assert seg is not None

    assert pool.find(seg.address, seg.size) is seg
    assert pool.find(seg.address + 10, 20) is seg
    assert pool.find(seg.address + seg.size - 1, 1) is seg
    assert pool.find(seg.address + seg.size - 1, 2) is None
    assert pool.find(seg.address - 1, 2) is None
    assert pool.find(np.zeros(8).ctypes.data, 8) is None
    assert pool.get(seg.id) is seg
    del array


def test_find_ignores_segments_that_are_not_user_held(pool: SegmentPool) -> None:
    seg = pool.acquire(100)

    assert pool.find(seg.address, 1) is None


# --- forgetting a receiver -----------------------------------------------------------------------


def test_forget_link_retires_what_the_receiver_held_and_forgets_it(pool: SegmentPool) -> None:
    # A dead receiver may have forwarded what it held to others still reading it: those
    # segments leave the pool for good instead of being reused.
    first, second, kept = pool.acquire(10), pool.acquire(10), pool.acquire(10)
    pool.set_pending(first, 3)
    pool.set_pending(second, 1)
    pool.set_pending(kept, 0)
    first.known_by.update({1, 2})
    second.known_by.update({1})
    kept.known_by.update({1, 2})

    pool.forget_link(1, {first.id: 2, second.id: 5, 999: 1})

    assert kept.known_by == {2}
    assert pool.get(first.id) is None
    assert pool.get(second.id) is None
    assert pool.get(kept.id) is kept
    assert pool.statistics()["segments"] == 1
    pool.release(first.id)  # a late release of a retired segment is ignored
    assert pool.acquire(10) is kept


# --- receivers -----------------------------------------------------------------------------------


def test_a_receiver_sees_the_senders_bytes_through_a_read_only_mapping(pool: SegmentPool) -> None:
    seg = pool.acquire(100)
    seg.view[:5] = b"hello"

    mapping = receiver_mapping(seg)

    assert mapping.size == seg.size
    assert mapping.view[:5] == b"hello"
    assert mapping.base.to_pybytes()[:5] == b"hello"
    assert not mapping.base.is_mutable
    seg.view[:5] = b"HELLO"
    assert mapping.view[:5] == b"HELLO"  # the same memory, not a copy


def test_writing_through_a_receiver_mapping_is_refused(pool: SegmentPool) -> None:
    seg = pool.acquire(100)
    mapping = receiver_mapping(seg)
    array = np.frombuffer(mapping.view, np.uint8)

    assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        array[0] = 1
    with pytest.raises(TypeError):
        memoryview(mapping.view)[0] = 1
    assert seg.view[0] == 0


def test_a_receiver_mapping_outlives_the_senders_pool(pool: SegmentPool) -> None:
    seg = pool.acquire(100)
    seg.view[:3] = b"abc"
    mapping = receiver_mapping(seg)

    pool.close()

    assert pool.statistics()["segments"] == 0
    assert mapping.view[:3] == b"abc"


# --- leases --------------------------------------------------------------------------------------


def test_a_lease_buffer_views_the_mapping_and_is_immutable(pool: SegmentPool) -> None:
    seg = pool.acquire(100)
    seg.view[10:14] = b"data"
    lease = Lease(receiver_mapping(seg), seg.id, lambda _seg_id: None)

    buf = lease.buffer(10, 4)

    assert buf.to_pybytes() == b"data"
    assert not buf.is_mutable
    assert buf.address == lease.mapping.base.address + 10


def test_a_lease_releases_once_when_its_last_buffer_is_collected(pool: SegmentPool) -> None:
    seg = pool.acquire(100)
    calls: list[int] = []
    lease = Lease(receiver_mapping(seg), seg.id, calls.append)
    buf = lease.buffer(0, 64)
    del lease
    collect()
    assert calls == []

    piece = buf.slice(8, 16)
    array = pa.Array.from_buffers(pa.int64(), 2, [None, piece])
    del buf
    collect()
    assert calls == []

    del piece
    collect()
    assert calls == []

    numbers = array.to_numpy(zero_copy_only=True)
    del array
    collect()
    assert calls == []

    del numbers
    collect()
    assert calls == [seg.id]
    collect()
    assert calls == [seg.id]


def test_a_lease_with_no_buffers_releases_when_dropped(pool: SegmentPool) -> None:
    seg = pool.acquire(100)
    calls: list[int] = []
    lease = Lease(receiver_mapping(seg), seg.id, calls.append)

    del lease
    collect()

    assert calls == [seg.id]


def test_a_decoded_value_holds_its_lease_until_collected(pool: SegmentPool) -> None:
    original = pa.array(["left", None, "right"])
    plan = plan_value(original)
    seg = pool.acquire(plan.size)
    plan.write_into(memoryview(seg.view), 0)
    pool.set_pending(seg, 1)
    lease = Lease(receiver_mapping(seg), seg.id, pool.release)

    value = decode_value(plan.kind, plan.type_blob, plan.layout, lease.buffer(0, seg.size))
    del lease
    collect()
    assert value.to_pylist() == ["left", None, "right"]
    assert all(not buf.is_mutable for buf in value.buffers() if buf is not None)
    assert not seg.free

    del value
    collect()
    assert seg.free


def test_a_failing_release_callback_is_swallowed(pool: SegmentPool) -> None:
    seg = pool.acquire(100)
    calls: list[int] = []

    def release(seg_id: int) -> None:
        calls.append(seg_id)
        raise OSError("peer gone")

    lease = Lease(receiver_mapping(seg), seg.id, release)
    buf = lease.buffer(0, 8)
    del lease, buf
    collect()  # an escaping exception would surface as an unraisable-exception warning (an error here)

    assert calls == [seg.id]


# --- no files ------------------------------------------------------------------------------------


def test_segments_are_anonymous_memfds_and_never_files_in_dev_shm(pool: SegmentPool) -> None:
    before = shm_entries()
    segments = [pool.acquire(n) for n in (10, 100_000, 1 << 20)]
    mappings = [receiver_mapping(seg) for seg in segments]
    array = pool.allocate(500)

    assert shm_entries() <= before
    assert not any(pool._name in name for name in os.listdir(DEV_SHM))
    for seg in segments:
        target = os.readlink(f"/proc/self/fd/{seg.fd}")
        assert target.startswith(f"/memfd:{pool._name}-{seg.id}"), target
        assert not os.get_inheritable(seg.fd)
    with open("/proc/self/maps") as maps:
        lines = [line for line in maps if pool._name in line]
    assert lines
    assert all("/memfd:" in line and DEV_SHM not in line for line in lines)
    del mappings, array


def test_close_drops_the_pools_descriptors(pool: SegmentPool) -> None:
    seg = pool.acquire(10)
    fd = seg.fd

    pool.close()

    assert pool.statistics() == {"segments": 0, "bytes": 0, "in_use": 0, "descriptors": 0}
    assert pool.get(seg.id) is None
    with pytest.raises(FileNotFoundError):
        os.readlink(f"/proc/self/fd/{fd}")
