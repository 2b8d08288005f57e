"""The backend conformance kit: one sender, one receiver, every guarantee of `Backend`.

`check_backend` sends thousands of small messages and every size of `PAYLOAD_SIZES`
through a sender → receiver pair and checks order, completeness, integrity and the close;
`check_unreachable` checks that a sender whose peer never answers fails within its bound.

Example::

    check_backend(lambda receiver: tcp_pair(receiver), messages=1000)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class CollectingReceiver:
    """A `doradus.backends.Receiver` that keeps everything delivered, for tests.

    ``values`` holds (input ids, decoded value) in arrival order; ``closed``
    the inputs closed; ``errors`` the error messages; ``timeouts`` the inputs a
    sender's backpressure wait timed out for.

    Example::

        receiver = CollectingReceiver()
        backend = TcpBackend("b", receiver)
    """

    def __init__(self) -> None:
        import threading

        self.values: list[tuple[tuple[str, ...], Any]] = []
        self.closed_inputs: list[str] = []
        self.errors: list[str] = []
        self.timeouts: list[str] = []
        self.dropped_counts: dict[str, int] = {}
        self.changed = threading.Condition()

    def deliver(self, inputs: tuple[str, ...], entry: tuple[Any, ...]) -> None:
        """Decode the message (as a node would) and keep it."""
        from doradus._node.receive import decode_input as _decode_input

        value = _decode_input(inputs[0], entry).value
        with self.changed:
            self.values.append((inputs, value))
            self.changed.notify_all()

    def closed(self, inputs: Sequence[str]) -> None:
        """Keep the closed inputs."""
        with self.changed:
            self.closed_inputs.extend(inputs)
            self.changed.notify_all()

    def error(self, message: str) -> None:
        """Keep the error."""
        with self.changed:
            self.errors.append(message)
            self.changed.notify_all()

    def timed_out(self, inputs: Sequence[str]) -> None:
        """Keep the inputs a sender's backpressure wait timed out for (``timeouts``)."""
        with self.changed:
            self.timeouts.extend(inputs)
            self.changed.notify_all()

    def dropped(self, inputs: Sequence[str], count: int) -> None:
        """Count the messages a sender dropped for each of ``inputs`` (``dropped_counts``)."""
        with self.changed:
            for input_id in inputs:
                self.dropped_counts[input_id] = self.dropped_counts.get(input_id, 0) + count
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[CollectingReceiver], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds; False if ``timeout`` seconds pass first.

        Example::

            receiver.wait_for(lambda r: len(r.values) == 10, 5.0)
        """
        import time

        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.1))
            return True


PAYLOAD_SIZES = (0, 1, 1000, 64 * 1024 - 1, 64 * 1024 + 1, 1 << 20, 16 << 20)
"""Payload sizes every backend must carry intact.

`check_backend` sends one message of each (its default ``sizes``): empty, one byte, 1000
bytes, either side of 64 KiB, 1 MiB and 16 MiB.

Example:
    >>> PAYLOAD_SIZES
    (0, 1, 1000, 65535, 65537, 1048576, 16777216)
"""


def outgoing(value: Any, seq: int, output: str = "out") -> Any:
    """The `Outgoing` a node would hand its backend for ``value``.

    Example::

        backend.send(outgoing([1, 2, 3], seq=1))
    """
    import time

    from doradus._wire.values import plan_value, to_arrow
    from doradus.backends import Outgoing

    array = to_arrow(value)
    return Outgoing(output.encode(), array, plan_value(array), b"", seq, time.time_ns())


def check_backend(
    make_pair: Callable[[CollectingReceiver], tuple[Any, Any]],
    *,
    messages: int = 10_000,
    sizes: Sequence[int] = PAYLOAD_SIZES,
    timeout: float = 60.0,
) -> None:
    """Assert the backend guarantees on a sender → receiver pair.

    ``make_pair(receiver)`` returns ``(sender, receiver_backend)``: opened
    and started backends where node ``a``'s output ``out`` reaches node
    ``b``'s input ``in``, ``receiver_backend`` delivering to ``receiver``.
    Checks, in one pair's life: ``messages`` small messages arrive complete
    and in order; each payload of ``sizes`` arrives intact; after the
    sender's ``close()`` the input closes, after everything sent before it.

    Raises:
        AssertionError: a guarantee does not hold.

    Example::

        check_backend(lambda r: tcp_pair(r), messages=1000)
    """
    import numpy as np

    receiver = CollectingReceiver()
    sender, backend = make_pair(receiver)
    try:
        for seq in range(messages):
            sender.send(outgoing([seq], seq))
        complete = receiver.wait_for(lambda r: len(r.values) >= messages, timeout)
        got = [v.to_pylist()[0] for _inputs, v in receiver.values]
        assert complete, f"{sender.name}: {len(got)} of {messages} messages arrived within {timeout:g}s"
        assert got == list(range(messages)), f"{sender.name}: messages arrived out of order or twice"
        assert all(inputs == ("in",) for inputs, _v in receiver.values)
        base = len(receiver.values)
        rng = np.random.default_rng(7)
        blobs = [rng.integers(0, 256, size, dtype=np.uint8).tobytes() for size in sizes]
        for k, blob in enumerate(blobs):
            sender.send(outgoing(blob, messages + k))
        want = base + len(blobs)
        complete = receiver.wait_for(lambda r: len(r.values) >= want, timeout)
        assert complete, f"{sender.name}: {len(receiver.values) - base} of {len(blobs)} payloads arrived"
        for blob, (_inputs, value) in zip(blobs, receiver.values[base:], strict=True):
            data = value.buffers()[1]
            got_bytes = (
                b"" if data is None else bytes(memoryview(data)[value.offset : value.offset + len(value)])
            )
            assert got_bytes == blob, f"{sender.name}: a {len(blob)} B payload arrived altered"
        sender.send(outgoing([-1], messages + len(blobs)))
        sender.close()
        closed = receiver.wait_for(lambda r: "in" in r.closed_inputs, timeout)
        assert closed, f"{sender.name}: the input did not close after the sender closed"
        last = receiver.values[-1][1].to_pylist()
        assert last == [-1], f"{sender.name}: the input closed before the last message arrived"
        assert not receiver.errors, f"{sender.name}: errors: {receiver.errors}"
    finally:
        sender.close()
        backend.close()


def check_unreachable(
    backend_class: Any, connect: str, *, retries: int = 5, interval: float = 0.05, margin: float = 2.0
) -> None:
    """Assert that a sender whose peer never answers fails with `ConnectError` within its retry bound.

    The sender of ``backend_class`` opens one link to ``connect`` (an address
    nobody serves) with ``connect_retries`` and ``retry_interval`` set; it must
    raise `ConnectError` saying how many attempts it made, within
    ``retries * (interval + 1 s) + margin`` seconds (each attempt may wait up
    to a second for its handshake).

    Raises:
        AssertionError: it did not fail, failed otherwise, or took longer.

    Example::

        check_unreachable(TcpBackend, "127.0.0.1:9")
    """
    import time

    from doradus._exceptions import ConnectError
    from doradus.backends import LinkSpec

    sender = backend_class("a", CollectingReceiver())
    options = {"connect": connect, "connect_retries": retries, "retry_interval": interval}
    began = time.monotonic()
    failure = ""
    try:
        sender.open([LinkSpec("b", "out", ("out",), options=options)], [])
    except ConnectError as exc:
        failure = str(exc)
    else:
        sender.close()
        raise AssertionError(f"{sender.name}: reaching {connect} did not fail")
    took = time.monotonic() - began
    assert f"after {retries} attempts" in failure, f"{sender.name}: {failure}"
    assert took < retries * (interval + 1.0) + margin, f"{sender.name}: failing took {took:.1f}s"
