"""Two raw IPC transports between two Python processes: the floor under every framework.

`open_endpoint(role)` connects a sender to a receiver by `BENCH_TRANSPORT`:

- `iceoryx2`: shared-memory publish/subscribe (`Slice[c_uint8]`, one service each way) with
  an event service each way to wake a blocked reader: the sender loans a sample, writes (or
  fills) it in place, sends it and notifies; the receiver waits on its listener and reads the
  sample where it lies, without a copy. Publishers retry until delivered: nothing is dropped.
- `pyzmq`: one `PAIR` socket over `ipc://` (a Unix socket); the payload goes through the
  kernel (one copy in, one out), read with `copy=False`.

Messages are 8-byte-stamped payloads; stamp 0 is a ping (the start handshake) and -1 the end
of the stream, both acknowledged and never measured. `Listener.timed_wait` of iceoryx2 can
return no event before its timeout under load: every wait here loops until a sample is there
or its own deadline passes, so a spurious wake-up never ends a receiver early.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

PING, END = 0, -1


class Endpoint:
    """One side of the link: payloads one way (sender → receiver), 8-byte acks the other."""

    zero_copy = False

    def send(self, payload: np.ndarray) -> None:
        """Send `payload` (uint8), copied into the transport."""
        raise NotImplementedError

    def send_in_place(self, size: int, fill: Callable[[np.ndarray], None]) -> None:
        """Get a `size`-byte buffer of the transport, `fill` it, send it without a copy."""
        raise NotImplementedError(f"{type(self).__name__} has no zero-copy send")

    def receive(self, timeout: float) -> tuple[np.ndarray, Any] | None:
        """The next payload (a uint8 view) and its holder (drop it to release), or None."""
        raise NotImplementedError

    def send_ack(self, stamp: int) -> None:
        raise NotImplementedError

    def receive_ack(self, timeout: float) -> int | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class Iceoryx2(Endpoint):
    zero_copy = True

    def __init__(self, role: str, channel: str, max_size: int) -> None:
        import iceoryx2 as iox2

        self.iox2 = iox2
        iox2.set_log_level_from_env_or(iox2.LogLevel.Warn)
        self.node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        mine, theirs = ("data", "ack") if role == "sender" else ("ack", "data")
        limit = {"data": max_size, "ack": 8}
        out_max = limit[mine]
        self.publisher = (
            self._service(f"{channel}/{mine}", out_max)
            .publisher_builder()
            .initial_max_slice_len(out_max)
            .allocation_strategy(iox2.AllocationStrategy.Static)
            .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
            .create()
        )
        self.subscriber = self._service(f"{channel}/{theirs}", limit[theirs]).subscriber_builder().create()
        self.notifier = self._event(f"{channel}/{mine}.ev").notifier_builder().create()
        self.listener = self._event(f"{channel}/{theirs}.ev").listener_builder().create()

    def _service(self, name: str, max_size: int) -> Any:
        iox2 = self.iox2
        # The same settings on both sides (the second opens what the first created). Small
        # messages get a deep buffer for back-to-back streams; big ones two slots (memory).
        depth = 256 if max_size <= 64 * 1024 else 2
        return (
            self.node.service_builder(iox2.ServiceName.new(name))
            .publish_subscribe(iox2.Slice[ctypes.c_uint8])
            .enable_safe_overflow(False)
            .subscriber_max_buffer_size(depth)
            .subscriber_max_borrowed_samples(2)
            .history_size(0)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()
        )

    def _event(self, name: str) -> Any:
        return self.node.service_builder(self.iox2.ServiceName.new(name)).event().open_or_create()

    def send(self, payload: np.ndarray) -> None:
        sample = self.publisher.loan_slice_uninit(payload.nbytes)
        ctypes.memmove(sample.payload_ptr, payload.ctypes.data, payload.nbytes)
        sample.assume_init().send()
        self.notifier.notify()

    def send_in_place(self, size: int, fill: Callable[[np.ndarray], None]) -> None:
        sample = self.publisher.loan_slice_uninit(size)
        fill(np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(sample.payload_ptr)))
        sample.assume_init().send()
        self.notifier.notify()

    def _take(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            sample = self.subscriber.receive()
            if sample is not None:
                return sample
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            # May return early with no event (spurious under load): loop, never give up early.
            self.listener.timed_wait(self.iox2.Duration.from_secs_f64(min(left, 1.0)))

    def receive(self, timeout: float) -> tuple[np.ndarray, Any] | None:
        sample = self._take(timeout)
        if sample is None:
            return None
        payload = sample.payload()
        view = np.ctypeslib.as_array((ctypes.c_uint8 * payload.len()).from_address(payload.as_ptr()))
        return view, sample

    def send_ack(self, stamp: int) -> None:
        self.send(np.array([stamp], dtype="<i8").view(np.uint8))

    def receive_ack(self, timeout: float) -> int | None:
        sample = self._take(timeout)
        if sample is None:
            return None
        return int(ctypes.c_int64.from_address(sample.payload().as_ptr()).value)

    def close(self) -> None:
        for port in (self.publisher, self.subscriber, self.notifier, self.listener):
            port.delete()
        del self.node  # the node's resources go with it


class Zmq(Endpoint):
    def __init__(self, role: str, channel: str, max_size: int) -> None:
        import zmq

        self.zmq = zmq
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.PAIR)
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.path = os.path.join(tempfile.gettempdir(), f"{channel}.zmq")
        if role == "sender":
            self.socket.bind(f"ipc://{self.path}")
        else:
            self.socket.connect(f"ipc://{self.path}")
        self.role = role

    def send(self, payload: np.ndarray) -> None:
        # copy=False: pyzmq hands big buffers to libzmq without a Python copy (small ones are
        # copied anyway, which is faster); the sender reuses the buffer only after the ack.
        self.socket.send(payload, copy=False)

    def receive(self, timeout: float) -> tuple[np.ndarray, Any] | None:
        if not self.socket.poll(int(timeout * 1000)):
            return None
        frame = self.socket.recv(copy=False)
        return np.frombuffer(frame.buffer, dtype=np.uint8), frame

    def send_ack(self, stamp: int) -> None:
        self.socket.send(np.array([stamp], dtype="<i8").tobytes())

    def receive_ack(self, timeout: float) -> int | None:
        got = self.receive(timeout)
        return None if got is None else int(got[0].view("<i8")[0])

    def close(self) -> None:
        self.socket.close()
        self.context.term()
        if self.role == "sender":
            try:
                os.unlink(self.path)
            except OSError:
                pass


def open_endpoint(role: str, max_size: int) -> Endpoint:
    """The endpoint of `BENCH_TRANSPORT` on `BENCH_CHANNEL`, for payloads up to `max_size`."""
    kinds = {"iceoryx2": Iceoryx2, "pyzmq": Zmq}
    return kinds[os.environ["BENCH_TRANSPORT"]](role, os.environ["BENCH_CHANNEL"], max(max_size, 8))


def stamp_message(stamp: int) -> np.ndarray:
    return np.array([stamp], dtype="<i8").view(np.uint8)


def handshake(end: Endpoint, timeout: float = 60.0) -> None:
    """Sender side: ping until the receiver acknowledges (both sides exist and are connected)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        end.send(stamp_message(PING))
        if end.receive_ack(0.05) == PING:
            return
    raise TimeoutError(f"no receiver answered within {timeout:.0f} s")


def finish(end: Endpoint, timeout: float = 30.0) -> bool:
    """Sender side: send the end of the stream and wait until the receiver acknowledges it."""
    end.send(stamp_message(END))
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if end.receive_ack(left) == END:
            return True
    return False
