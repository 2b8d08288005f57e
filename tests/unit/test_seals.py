"""Sealed segments: a hostile receiver cannot change what another receiver reads.

The hostile receiver is a real process that gets the segment's descriptor over
a real socket (``SCM_RIGHTS``) and tries every way to write it: reopening the
descriptor read-write through ``/proc/self/fd``, ``write``/``pwrite``,
``ftruncate`` (shrink and grow), punching a hole, ``mprotect`` of its read-only
mapping, and adding seals of its own.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from doradus._wire.protocol import DATA, FLAG_FD, FLAG_SHM, KIND_DATA
from doradus.backends import LinkSpec
from doradus.backends._segments import SEALS, Mapping, SegmentPool, check_sealed
from doradus.backends._shm import ShmBackend
from doradus.backends._shm_links import LOST_BIT
from doradus.testing import CollectingReceiver, outgoing

SIZE = 100_000

HOSTILE = textwrap.dedent(
    """
    import ctypes, errno, fcntl, json, mmap, os, socket, struct, sys

    DATA = struct.Struct("<BBHIIIQqQQQ")
    sock = socket.socket(fileno=int(sys.argv[1]))

    def receive():
        data, anc, _flags, _addr = sock.recvmsg(1 << 17, socket.CMSG_SPACE(16))
        fds = [fd for level, kind, raw in anc for fd in struct.unpack(f"{len(raw) // 4}i", raw)]
        seg_id, seg_size = DATA.unpack_from(data, 0)[8:10]
        return seg_id, seg_size, fds

    seg_id, size, fds = receive()
    fd = fds[0]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long)
    reader = mmap.mmap(fd, size, prot=mmap.PROT_READ)

    def attempt(action):
        try:
            action()
        except OSError as exc:
            return errno.errorcode[exc.errno]
        return "DONE"

    def libc_call(result):
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def write_through_new_mapping():
        rw = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
        view = mmap.mmap(rw, size)
        view[:8] = b"HOSTILE!"

    def address_of(view):
        import numpy
        return numpy.frombuffer(view, numpy.uint8).__array_interface__["data"][0]

    def mprotect_then_write():
        libc_call(libc.mprotect(address_of(reader), size, mmap.PROT_READ | mmap.PROT_WRITE))
        ctypes.memmove(address_of(reader), b"HOSTILE!", 8)

    rw = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)
    results = {
        "reopen read-write": "DONE" if rw >= 0 else "?",
        "mmap write (reopened)": attempt(write_through_new_mapping),
        "mmap write (received fd)": attempt(lambda: mmap.mmap(fd, size).write(b"HOSTILE!")),
        "pwrite": attempt(lambda: os.pwrite(rw, b"HOSTILE!", 0)),
        "write": attempt(lambda: os.write(rw, b"HOSTILE!")),
        "ftruncate shrink": attempt(lambda: os.ftruncate(rw, 0)),
        "ftruncate grow": attempt(lambda: os.ftruncate(rw, 2 * size)),
        "punch hole": attempt(lambda: libc_call(libc.fallocate(rw, 3, 0, size))),
        "add seal": attempt(lambda: fcntl.fcntl(rw, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)),
        "mprotect": attempt(mprotect_then_write),
        "private copy": attempt(lambda: mmap.mmap(rw, size, flags=mmap.MAP_PRIVATE).write(b"private!")),
    }
    print(json.dumps(results), flush=True)
    # Done: release the segment as a well-behaved receiver would, then read the reused one.
    sock.send(struct.pack("<BH", 2, 1) + struct.pack("<Q", seg_id))
    again, _size, more = receive()
    print(json.dumps({"same segment": again == seg_id, "new fds": len(more), "head": reader[:8].hex()}))
    """
)


@pytest.fixture
def sender_with_hostile_and_honest_receivers() -> Iterator[
    tuple[ShmBackend, ShmBackend, CollectingReceiver, subprocess.Popen[str]]
]:
    hostile_end, hostile_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    honest_end, honest_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = subprocess.Popen(
        [sys.executable, "-c", HOSTILE, str(hostile_peer.fileno())],
        pass_fds=[hostile_peer.fileno()],
        stdout=subprocess.PIPE,
        text=True,
    )
    hostile_peer.close()
    honest = CollectingReceiver()
    inbound = ShmBackend("honest", honest)
    inbound.open([LinkSpec("sender", "in", routes={"out": ["in"]})], [honest_peer.detach()])
    inbound.start()
    sender = ShmBackend("sender", CollectingReceiver())
    sender.open(
        [LinkSpec("hostile", "out", ("out",)), LinkSpec("honest", "out", ("out",))],
        [hostile_end.detach(), honest_end.detach()],
    )
    sender.start()
    yield sender, inbound, honest, child
    child.kill()
    child.wait()
    assert child.stdout is not None
    child.stdout.close()
    sender.close()
    inbound.close()


def test_a_receiver_cannot_change_what_another_receiver_reads(
    sender_with_hostile_and_honest_receivers: tuple[
        ShmBackend, ShmBackend, CollectingReceiver, subprocess.Popen[str]
    ],
) -> None:
    sender, inbound, honest, child = sender_with_hostile_and_honest_receivers
    original = np.arange(SIZE, dtype=np.uint8)
    sender.send(outgoing(original, 1))
    assert child.stdout is not None
    attempts = json.loads(child.stdout.readline())

    assert attempts == {
        "reopen read-write": "DONE",  # opening is allowed; nothing it could do is
        "mmap write (reopened)": "EPERM",
        "mmap write (received fd)": "EPERM",
        "pwrite": "EPERM",
        "write": "EPERM",
        "ftruncate shrink": "EPERM",
        "ftruncate grow": "EPERM",
        "punch hole": "EPERM",
        "add seal": "EPERM",
        "mprotect": "EACCES",
        "private copy": "DONE",  # copy-on-write: only the hostile process sees it
    }
    assert honest.wait_for(lambda r: len(r.values) == 1, 10)
    value = honest.values[0][1]
    assert value.to_numpy(zero_copy_only=True).tobytes() == original.tobytes()
    first_address = value.buffers()[1].address

    # The sender still writes the segment: once both receivers released it, it is reused.
    honest.values.clear()
    del value
    gc.collect()
    inbound.idle()
    seg = sender.pool.get(1)
    assert seg is not None
    deadline = time.monotonic() + 10
    while not seg.free and time.monotonic() < deadline:
        time.sleep(0.01)  # the releases come back on the sender's reactor thread
    assert seg.free
    reused = np.full(SIZE, 7, np.uint8)
    sender.send(outgoing(reused, 2))
    assert honest.wait_for(lambda r: len(r.values) == 1, 10)
    again = honest.values[0][1]
    assert again.to_numpy(zero_copy_only=True).tobytes() == reused.tobytes()
    assert again.buffers()[1].address == first_address  # the same segment, written again
    second = json.loads(child.stdout.readline())
    assert second == {"same segment": True, "new fds": 0, "head": "07" * 8}


def test_every_segment_is_sealed_once_its_sender_mapped_it() -> None:
    pool = SegmentPool("doradus-unit-seals")
    try:
        seg = pool.acquire(SIZE)
        assert fcntl.fcntl(seg.fd, fcntl.F_GET_SEALS) == SEALS
        seg.view[:5] = b"still"  # the sender's own mapping stays writable
        assert bytes(seg.view[:5]) == b"still"
        array = pool.allocate(16)
        array[:] = 3  # and so do buffers from allocate()
        assert int(array.sum()) == 48
        del array
    finally:
        pool.close()


def test_a_receiver_refuses_a_segment_that_is_not_sealed() -> None:
    fd = os.memfd_create("doradus-unit-unsealed", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, SIZE)
        with pytest.raises(Exception, match="not a sealed shared-memory segment"):
            Mapping(fd, SIZE)
    finally:
        os.close(fd)


def test_a_receiver_refuses_a_segment_smaller_than_announced() -> None:
    pool = SegmentPool("doradus-unit-seals")
    try:
        seg = pool.acquire(SIZE)
        with pytest.raises(Exception, match="announced as"):
            check_sealed(seg.fd, seg.size + 1)
    finally:
        pool.close()


def test_an_unsealed_segment_from_a_hostile_sender_is_dropped_and_handed_back() -> None:
    receiver = CollectingReceiver()
    inbound = ShmBackend("b", receiver)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    inbound.open([LinkSpec("a", "in", routes={"out": ["in"]})], [ours.detach()])
    inbound.start()
    fd = os.memfd_create("hostile", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, SIZE)
        plan_layout = outgoing(np.zeros(8, np.uint8), 1)
        layout = plan_layout.plan.layout
        blob = plan_layout.plan.type_blob
        header = DATA.pack(KIND_DATA, FLAG_SHM | FLAG_FD, 3, len(blob), len(layout), 0, 1, 0, 42, SIZE, 0)
        theirs.sendmsg(
            [header, b"out", blob, layout],
            [(socket.SOL_SOCKET, socket.SCM_RIGHTS, np.array([fd], np.int32).tobytes())],
        )
        assert receiver.wait_for(lambda r: bool(r.errors), 10)
        assert "not a sealed shared-memory segment" in receiver.errors[0]
        assert receiver.values == []
        inbound.idle()
        theirs.settimeout(10)
        release = theirs.recv(64)
        assert release[3:] == (42 | LOST_BIT).to_bytes(8, "little")
    finally:
        os.close(fd)
        theirs.close()
        inbound.close()


def test_the_sealed_segment_reaches_arrow_read_only() -> None:
    pool = SegmentPool("doradus-unit-seals")
    try:
        seg = pool.acquire(SIZE)
        fd = os.dup(seg.fd)
        try:
            mapping = Mapping(fd, seg.size)
        finally:
            os.close(fd)
        assert not mapping.base.is_mutable
        array = pa.Array.from_buffers(pa.uint8(), 8, [None, mapping.base])
        with pytest.raises(ValueError, match="read-only"):
            array.to_numpy(zero_copy_only=True)[0] = 1
    finally:
        pool.close()
