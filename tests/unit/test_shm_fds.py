"""Descriptors on the shared-memory data plane: bounded, whatever a node keeps.

A mapping needs no descriptor (``doradus._unsafe.memory``); a sender closes a
segment's once every receiver has it; a receiver keeps a few for forwarding;
limits reached are ``ResourceLimitError``s; closing a backend closes all it opened.
"""

from __future__ import annotations

import errno
import gc
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from doradus._exceptions import ResourceLimitError
from doradus._unsafe.memory import Region, map_file
from doradus.backends import LinkSpec, _segments
from doradus.backends._segments import SegmentPool
from doradus.backends._shm import ShmBackend
from doradus.backends._shm_forward import ReceivedFds
from doradus.testing import CollectingReceiver, outgoing

BIG = 100 * 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def mapped(name: str) -> int:
    with open("/proc/self/maps") as maps:
        return sum(1 for line in maps if name in line)


def collect() -> None:
    gc.collect()
    gc.collect()


def socket_pair() -> tuple[int, int]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock in (a, b):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return a.detach(), b.detach()


class Wiring:
    """Backends wired by real socket pairs, closed at the end."""

    def __init__(self) -> None:
        self.backends: list[ShmBackend] = []

    def backend(self, name: str, receiver: CollectingReceiver | None = None) -> ShmBackend:
        made = ShmBackend(f"{name}-{uuid.uuid4().hex[:6]}", receiver or CollectingReceiver())
        self.backends.append(made)
        return made

    def link(self, sender: ShmBackend, receiver: ShmBackend, output: str = "out", inp: str = "in") -> None:
        out_fd, in_fd = socket_pair()
        sender.open([LinkSpec("peer", "out", (output,))], [out_fd])
        receiver.open([LinkSpec("peer", "in", routes={output: [inp]})], [in_fd])

    def close(self) -> None:
        for made in self.backends:
            made.close()


@pytest.fixture
def wiring() -> Iterator[Wiring]:
    made = Wiring()
    yield made
    made.close()


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    def set_budget(budget: int) -> None:
        monkeypatch.setattr(_segments, "descriptor_budget", lambda: budget)

    return set_budget


# --- mapping without a descriptor ----------------------------------------------------------------


def test_a_region_needs_no_descriptor_and_lives_as_long_as_what_views_it() -> None:
    name = f"doradus-unit-region-{uuid.uuid4().hex[:8]}"
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.ftruncate(fd, BIG)
    region = map_file(fd, BIG, writable=True)
    os.close(fd)
    array = np.asarray(region)
    array[:4] = [1, 2, 3, 4]
    buffer = pa.foreign_buffer(region.address, BIG, base=region)
    assert array.base is region
    del region
    collect()

    assert mapped(name) == 1
    del array
    collect()
    assert mapped(name) == 1  # the Arrow buffer still holds the region
    assert buffer.to_pybytes()[:4] == b"\x01\x02\x03\x04"

    del buffer
    collect()
    assert mapped(name) == 0


def test_a_read_only_region_refuses_writes_through_numpy() -> None:
    fd = os.memfd_create("doradus-unit-ro", os.MFD_CLOEXEC)
    os.ftruncate(fd, 4096)
    array = np.asarray(map_file(fd, 4096, writable=False))
    os.close(fd)

    with pytest.raises(ValueError, match="read-only"):
        array[0] = 1


def test_a_region_cannot_be_made_from_an_arbitrary_address() -> None:
    with pytest.raises(TypeError, match="map_file"):
        Region(0x10000, 4096, True)


def test_a_failed_mapping_is_an_os_error_with_its_errno() -> None:
    with pytest.raises(OSError, match="mmap of 4096 bytes failed") as caught:
        map_file(-1, 4096, writable=False)
    assert caught.value.errno == errno.EBADF
    with pytest.raises(ValueError, match="cannot map 0 bytes"):
        map_file(0, 0, writable=False)


def test_ctypes_is_confined_to_the_unsafe_package() -> None:
    import doradus

    root = os.path.dirname(doradus.__file__)
    users = []
    for folder, _dirs, files in os.walk(root):
        for file in files:
            path = os.path.join(folder, file)
            if file.endswith(".py") and "ctypes" in Path(path).read_text():
                users.append(os.path.relpath(path, root))
    assert users
    assert all(user.startswith("_unsafe" + os.sep) for user in users), users


# --- the sender's descriptors --------------------------------------------------------------------


def test_a_sender_closes_a_segments_descriptor_once_every_receiver_has_it() -> None:
    pool = SegmentPool(f"doradus-unit-{uuid.uuid4().hex[:6]}")
    pool.links.update({1, 2})
    seg = pool.acquire(BIG, (1, 2))
    seg.known_by.add(1)
    pool.settle(seg)
    assert seg.fd >= 0

    seg.known_by.add(2)
    pool.settle(seg)
    assert seg.fd == -1
    assert pool.statistics()["descriptors"] == 0
    pool.close()


def test_a_segment_without_descriptor_is_reused_only_for_receivers_that_have_it() -> None:
    pool = SegmentPool(f"doradus-unit-{uuid.uuid4().hex[:6]}")
    pool.links.update({1, 2})
    seg = pool.acquire(BIG, (1,))
    seg.known_by.add(1)
    pool.settle(seg)  # link 2 has not seen it: kept
    assert seg.fd >= 0
    pool.set_pending(seg, 0)
    seg.known_by.add(2)
    pool.settle(seg)
    pool.set_pending(seg, 0)

    assert pool.acquire(BIG, (1, 2)) is seg
    pool.set_pending(seg, 0)
    assert pool.acquire(BIG, (3,)) is not seg  # a receiver wired later never saw it
    pool.close()


def test_a_pool_keeps_at_most_its_budget_of_descriptors() -> None:
    pool = SegmentPool(f"doradus-unit-{uuid.uuid4().hex[:6]}", fd_budget=4)
    arrays = [pool.allocate(BIG) for _ in range(10)]

    assert pool.statistics()["descriptors"] <= 4
    assert pool.statistics()["segments"] >= 4
    del arrays
    pool.close()


def test_a_receiver_that_lost_a_descriptor_is_sent_it_again() -> None:
    pool = SegmentPool(f"doradus-unit-{uuid.uuid4().hex[:6]}")
    pool.links.add(1)
    seg = pool.acquire(BIG, (1,))
    first = pool.lend_fd(seg, (1,))
    assert first is not None
    assert first >= 0
    os.close(first)  # a duplicate: the caller's to close
    seg.known_by.add(1)
    assert pool.lend_fd(seg, (1,)) == -1  # it has it

    pool.lost(seg.id, 1)
    lent = pool.lend_fd(seg, (1,))
    assert lent is not None
    assert lent >= 0
    os.close(lent)
    pool.close()


def test_a_segment_lost_after_its_descriptor_closed_is_retired() -> None:
    pool = SegmentPool(f"doradus-unit-{uuid.uuid4().hex[:6]}")
    pool.links.update({1, 2})
    seg = pool.acquire(BIG, (1, 2))
    seg.known_by.update({1, 2})
    pool.settle(seg)
    assert seg.fd == -1

    pool.lost(seg.id, 1)

    assert pool.get(seg.id) is None  # it could never reach receiver 1 again
    pool.release(seg.id)  # late releases of a retired segment are ignored
    assert pool.acquire(BIG, (1, 2)) is not seg
    pool.close()


def test_kept_values_cost_no_descriptors(wiring: Wiring, small_budget: Callable[[int], None]) -> None:
    small_budget(16)
    got = CollectingReceiver()
    sender, receiver = wiring.backend("a"), wiring.backend("b", got)
    wiring.link(sender, receiver)
    sender.start()
    receiver.start()
    before = open_fds()

    for i in range(300):
        sender.send(outgoing(np.full(BIG, i % 251, np.uint8), i))
    assert got.wait_for(lambda r: len(r.values) == 300, 30)

    # Before: two descriptors per segment on each side (ours plus mmap's dup), 1,200 here.
    assert open_fds() - before <= 16 + 2
    assert sender.pool.statistics()["segments"] == 300  # all held: each value keeps its segment
    assert sender.pool.statistics()["descriptors"] == 0
    assert all(
        value.to_numpy(zero_copy_only=True)[0] == i % 251 and len(value) == BIG
        for i, (_inputs, value) in enumerate(got.values)
    )


def test_a_receiver_wired_later_gets_a_copy_of_an_allocated_buffer(wiring: Wiring) -> None:
    first, later = CollectingReceiver(), CollectingReceiver()
    sender = wiring.backend("a")
    one, two = wiring.backend("b", first), wiring.backend("c", later)
    wiring.link(sender, one)
    for made in (sender, one, two):
        made.start()
    buffer = sender.allocate(BIG)
    buffer[:] = 9
    sender.send(outgoing(buffer, 1))
    assert first.wait_for(lambda r: len(r.values) == 1, 10)
    assert sender.pool.statistics()["descriptors"] == 0  # its only receiver has it

    wiring.link(sender, two)  # a new receiver: the descriptor is gone
    sender.send(outgoing(buffer, 2))

    assert later.wait_for(lambda r: len(r.values) == 1, 10)
    assert first.wait_for(lambda r: len(r.values) == 2, 10)
    for got in (first, later):
        assert got.values[-1][1].to_numpy(zero_copy_only=True).tobytes() == bytes([9]) * BIG
    assert later.errors == []
    assert first.errors == []


# --- forwarding ----------------------------------------------------------------------------------


def relay_chain(
    wiring: Wiring, small_budget: Callable[[int], None], relay_budget: int
) -> tuple[ShmBackend, ShmBackend, CollectingReceiver, CollectingReceiver]:
    at_relay, at_sink = CollectingReceiver(), CollectingReceiver()
    source = wiring.backend("source")
    small_budget(relay_budget)
    relay = wiring.backend("relay", at_relay)
    small_budget(16)
    sink = wiring.backend("sink", at_sink)
    wiring.link(source, relay)
    wiring.link(relay, sink)
    for made in (source, relay, sink):
        made.start()
    return source, relay, at_relay, at_sink


@pytest.mark.parametrize(("budget", "copies"), [(16, False), (0, True)])
def test_a_relay_forwards_without_a_copy_while_it_keeps_the_descriptor(
    wiring: Wiring, small_budget: Callable[[int], None], budget: int, copies: bool
) -> None:
    source, relay, at_relay, at_sink = relay_chain(wiring, small_budget, budget)
    source.send(outgoing(np.full(BIG, 5, np.uint8), 1))
    assert at_relay.wait_for(lambda r: len(r.values) == 1, 10)

    relay.send(outgoing(at_relay.values[0][1], 1))

    assert at_sink.wait_for(lambda r: len(r.values) == 1, 10)
    assert at_sink.values[0][1].to_numpy(zero_copy_only=True).tobytes() == bytes([5]) * BIG
    assert relay.pool.statistics()["segments"] == (1 if copies else 0)
    assert relay.received_fds.statistics()["kept"] == (0 if copies else 1)


def test_received_descriptors_stay_within_their_budget_least_recent_out_first() -> None:
    fds = ReceivedFds(budget=2)
    pool = SegmentPool(f"doradus-unit-{uuid.uuid4().hex[:6]}")
    segments = [pool.acquire(BIG) for _ in range(3)]
    mappings = []
    for seg in segments:
        fd = os.dup(seg.fd)
        mapping = _segments.Mapping(fd, seg.size)
        fds.keep(mapping, fd)
        mappings.append(mapping)
        if len(mappings) == 2:
            os.close(fds.borrow(mappings[0]))  # forwarded: now the most recent

    assert [m.fd >= 0 for m in mappings] == [True, False, True]
    assert fds.statistics() == {"kept": 2, "budget": 2}
    assert fds.borrow(mappings[1]) == -1
    del mappings[0]
    collect()
    assert fds.statistics()["kept"] == 1  # a mapping that goes closes its descriptor
    fds.close()
    assert all(m.fd == -1 for m in mappings)
    pool.close()


# --- limits --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "code", "limit", "fix"),
    [
        ("memfd_create", errno.EMFILE, "RLIMIT_NOFILE", "ulimit -n"),
        ("memfd_create", errno.ENFILE, "fs.file-max", "sysctl fs.file-max"),
        ("map_file", errno.ENOMEM, "vm.max_map_count", "sysctl vm.max_map_count"),
    ],
)
def test_a_limit_reached_making_a_segment_is_a_resource_limit_error(
    monkeypatch: pytest.MonkeyPatch, where: str, code: int, limit: str, fix: str
) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    if where == "memfd_create":
        monkeypatch.setattr(_segments.os, "memfd_create", fail)
    else:
        monkeypatch.setattr(_segments, "map_file", fail)
    before = open_fds()
    pool = SegmentPool("doradus-unit-limits")

    with pytest.raises(ResourceLimitError) as caught:
        pool.allocate(BIG)
    assert caught.value.limit == limit
    assert caught.value.errno == code
    assert fix in str(caught.value)
    assert open_fds() == before  # nothing half-made stays open
    pool.close()


class _FullSocket:
    """A socket whose sends hit a kernel limit."""

    def __init__(self, code: int) -> None:
        self.code = code

    def sendmsg(self, *_args: object) -> int:
        raise OSError(self.code, os.strerror(self.code))


@pytest.mark.parametrize("size", [10, BIG])
def test_a_send_hitting_a_limit_raises_and_keeps_the_link(wiring: Wiring, size: int) -> None:
    got = CollectingReceiver()
    sender, receiver = wiring.backend("a"), wiring.backend("b", got)
    wiring.link(sender, receiver)
    sender.start()
    receiver.start()
    link = sender._out_links[0]
    real = link.sock
    link.sock = _FullSocket(errno.ETOOMANYREFS)  # type: ignore[assignment]  # a stand-in that fails

    with pytest.raises(ResourceLimitError, match="ulimit -n"):
        sender.send(outgoing(np.ones(size, np.uint8), 1))

    link.sock = real
    assert link.alive
    assert sender.send(outgoing(np.ones(size, np.uint8), 2)) == 1
    assert got.wait_for(lambda r: len(r.values) == 1, 10)
    if size == BIG:
        assert sender.pool.statistics()["in_use"] == 1  # the failed send released its hold


# --- closing -------------------------------------------------------------------------------------


def test_closing_backends_closes_every_descriptor_they_opened(wiring: Wiring) -> None:
    before = open_fds()
    for _ in range(3):
        got = CollectingReceiver()
        sender, receiver = wiring.backend("a"), wiring.backend("b", got)
        wiring.link(sender, receiver)
        sender.start()
        receiver.start()
        sender.send(outgoing(np.ones(BIG, np.uint8), 1))
        assert got.wait_for(lambda r: len(r.values) == 1, 10)
        sender.close()
        receiver.close()
        wiring.backends.clear()

    assert open_fds() == before  # the reactors' wake-up descriptors and epolls included
