"""Backpressure on the data plane: a sender waits for room in its receiver's backpressure inputs.

An input with ``queue_policy: backpressure`` never drops a message. Its sender keeps, per
receiving link, how many messages it sent to that input that the receiving node has not
taken yet (`SendGate`); at the input's ``queue_size`` its send waits until the node takes
one, at most ``backpressure_timeout`` seconds. Then the message is not sent to that receiver,
the receiver is told (it counts a *backpressure timeout* on the inputs it would have fed) and
the sender logs a warning. While the receiving node is paused its senders wait without a
deadline: a pause loses nothing.

Three small messages travel for it, the same bytes as a socket-pair datagram or a network
frame (`FLOW`: kind, a value, the length of a name, then the name in UTF-8):

- ``CREDIT`` (receiver to sender): the node took ``value`` messages of input ``name``;
- ``HOLD`` (receiver to sender): the node was paused (``value`` 1) or resumed (0);
- ``SKIP`` (sender to receiver): a message of output ``name`` was not sent, its wait timed out.

Only links into backpressure inputs carry those three. One more rides any shared-memory link:

- ``SHED`` (sender to receiver): ``value`` messages of output ``name`` were not sent because the
  receiver held too much of the sender's shared memory (`doradus.backends._shm_holds`); the
  receiver counts them as dropped.

Example:
    >>> gate = SendGate("camera", "viewer", {"image": {"frames": (1, 0.01)}})
    >>> gate.admit(b"image"), gate.admit(b"image")   # the second waits 10 ms, then times out
    (True, False)
    >>> gate.credit("frames", 1); gate.admit(b"image")
    True
    >>> decode_flow(encode_flow(KIND_CREDIT, 1, "frames"))
    (4, 1, 'frames')
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

from doradus._exceptions import DecodeError

FLOW = struct.Struct("<BBH")
"""kind, value (a count, or 1/0), length of the name that follows (an input or output id)."""
KIND_CREDIT = 4
KIND_HOLD = 5
KIND_SKIP = 6
KIND_SHED = 7
FLOW_KINDS = frozenset({KIND_CREDIT, KIND_HOLD, KIND_SKIP, KIND_SHED})
WARN_EVERY = 10.0
"""Seconds between two warnings about the same input's timeouts (the first one is immediate)."""

Window = tuple[int, float]
"""A backpressure input's room and wait: (``queue_size``, ``backpressure_timeout`` seconds)."""
Windows = Mapping[str, Mapping[str, Window]]
"""Per output of the sender, the receiver's backpressure inputs it feeds and their `Window`."""

_log = logging.getLogger("doradus.backpressure")


def encode_flow(kind: int, value: int, name: str) -> bytes:
    """One flow message (see the module documentation).

    Example:
        >>> encode_flow(KIND_HOLD, 1, "x") == bytes([KIND_HOLD, 1, 1, 0]) + b"x"
        True
    """
    raw = name.encode()
    return FLOW.pack(kind, value, len(raw)) + raw


def is_flow(data: bytes | bytearray | memoryview) -> bool:
    """Whether a datagram or frame is a flow message (a data message never starts with these kinds).

    Example:
        >>> is_flow(encode_flow(KIND_SKIP, 0, "out")), is_flow(b"data")
        (True, False)
    """
    return len(data) >= FLOW.size and data[0] in FLOW_KINDS


def decode_flow(data: bytes | bytearray | memoryview) -> tuple[int, int, str]:
    """``(kind, value, name)`` of a flow message.

    Raises:
        DecodeError: it is not one.

    Example:
        >>> decode_flow(encode_flow(KIND_SKIP, 0, "image"))
        (6, 0, 'image')
    """
    if not is_flow(data):
        raise DecodeError("not a flow message")
    kind, value, size = FLOW.unpack_from(data, 0)
    if len(data) != FLOW.size + size:
        raise DecodeError(f"a flow message of {len(data)} B announces a name of {size} B")
    try:
        return kind, value, bytes(data[FLOW.size :]).decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"a flow message names no UTF-8 id: {exc}") from exc


class SendGate:
    """At a sender, the room left in one receiver's backpressure inputs, and the wait for it.

    Thread-safe: senders wait in `admit`, the thread reading the link's way back calls
    `credit` and `hold`, and `close` (the receiver is gone) releases every waiter.

    Args:
        node_id: the sending node (for the warning).
        peer: the receiving node.
        windows: per output, the receiver's backpressure inputs it feeds and their `Window`.

    Example:
        >>> gate = SendGate("a", "b", {"out": {"x": (2, 1.0)}})
        >>> gate.gates(b"out"), gate.gates(b"other")
        (True, False)
    """

    def __init__(self, node_id: str, peer: str, windows: Windows) -> None:
        self.node_id = node_id
        self.peer = peer
        self._inputs = {o.encode(): tuple(ins.items()) for o, ins in windows.items() if ins}
        self._taken_by: dict[str, int] = {i: 0 for ins in windows.values() for i in ins}
        """Per input: messages sent and not taken yet by the receiving node."""
        self._cond = threading.Condition()
        self._held = False
        self._open = True
        self.timeouts: dict[str, int] = dict.fromkeys(self._taken_by, 0)
        """Per input, messages not sent because the wait for room timed out."""
        self._warned: dict[str, tuple[float, int]] = {}

    def gates(self, output: bytes) -> bool:
        """Whether messages of ``output`` wait for room at this receiver."""
        return output in self._inputs

    def admit(self, output: bytes, start: float | None = None) -> bool:
        """Wait for room for one message of ``output``; False if the wait timed out (nothing taken).

        The deadline runs from ``start`` (`time.monotonic`, default now) and is suspended while
        the receiver is paused. A closed gate (the receiver is gone) admits at once.
        """
        entries = self._inputs.get(output)
        if entries is None:
            return True
        with self._cond:
            deadline: float | None = None
            while self._open:
                full = [(i, w) for i, w in entries if self._taken_by[i] >= w[0]]
                if not full:
                    for input_id, _window in entries:
                        self._taken_by[input_id] += 1
                    return True
                if self._held:  # a paused receiver: no deadline until it resumes
                    self._cond.wait()
                    deadline, start = None, None
                    continue
                now = time.monotonic()
                if deadline is None:
                    deadline = (now if start is None else start) + min(w[1] for _i, w in full)
                if now >= deadline:
                    self._timed_out(output, full)
                    return False
                self._cond.wait(deadline - now)
            return True

    def credit(self, input_id: str, count: int) -> None:
        """The receiving node took ``count`` messages of ``input_id``: room for as many more."""
        with self._cond:
            if input_id in self._taken_by:
                # never below 0: a restarted sender gets the credits of its predecessor's messages
                self._taken_by[input_id] = max(0, self._taken_by[input_id] - count)
                self._cond.notify_all()

    def hold(self, held: bool) -> None:
        """The receiving node was paused (True) or resumed: waits have no deadline meanwhile."""
        with self._cond:
            self._held = held
            self._cond.notify_all()

    def close(self) -> None:
        """The receiver is gone: nobody waits any more."""
        with self._cond:
            self._open = False
            self._cond.notify_all()

    def _timed_out(self, output: bytes, full: Sequence[tuple[str, Window]]) -> None:
        """Count the timeout and warn (at once the first time, then every `WARN_EVERY` seconds)."""
        now = time.monotonic()
        for input_id, (size, timeout) in full:
            self.timeouts[input_id] += 1
            last, count = self._warned.get(input_id, (-WARN_EVERY, 0))
            if now - last < WARN_EVERY:
                self._warned[input_id] = (last, count + 1)
                continue
            self._warned[input_id] = (now, 0)
            more = f" ({count} more since the last warning)" if count else ""
            _log.warning(
                "node %r dropped a message of output %r for input %r of node %r after waiting %g s "
                "for room in its queue (queue_policy: backpressure, queue_size %d)%s: %r does not take "
                "its messages fast enough; make it faster, raise queue_size, or raise "
                "backpressure_timeout on that input",
                self.node_id,
                output.decode(),
                input_id,
                self.peer,
                timeout,
                size,
                more,
                self.peer,
                extra={"input": f"{self.peer}/{input_id}", "backpressure_timeouts": self.timeouts[input_id]},
            )


def gate_takes(gate: SendGate | None, data: bytes | bytearray | memoryview) -> None:
    """A flow message that came back from a receiver: a credit or a hold for ``gate`` (if any).

    A message that is not a flow message, or a link without a gate, changes nothing.

    Example:
        >>> gate_takes(None, encode_flow(KIND_CREDIT, 1, "x"))   # no gate: nothing to do
    """
    if gate is None:
        return
    try:
        kind, value, input_id = decode_flow(data)
    except DecodeError:
        return
    if kind == KIND_CREDIT:
        gate.credit(input_id, value)
    elif kind == KIND_HOLD:
        gate.hold(bool(value))


class GatedLink(Protocol):
    """A sending link end that may wait for room at its receiver (`SendGate`)."""

    gate: SendGate | None
    alive: bool


L = TypeVar("L", bound=GatedLink)


def admit_all(links: Iterable[L], output: bytes) -> tuple[list[L], list[L]]:
    """Wait for room at every gated link of ``output``: the links to send to, and those that timed out.

    Every wait's deadline runs from the same start, so a send waits ``backpressure_timeout`` at
    most however many receivers are full. Dead links are left out of both.

    Example:
        >>> class End:
        ...     def __init__(self, gate): self.gate, self.alive = gate, True
        >>> fast, slow = End(None), End(SendGate("a", "b", {"out": {"x": (0, 0.0)}}))
        >>> sent, skipped = admit_all([fast, slow], b"out")
        >>> sent == [fast], skipped == [slow]
        (True, True)
    """
    start = time.monotonic()
    sent: list[L] = []
    skipped: list[L] = []
    for link in links:
        gate = link.gate
        if gate is None or gate.admit(output, start):
            if link.alive:
                sent.append(link)
        elif link.alive:
            skipped.append(link)
    return sent, skipped


def gate_statistics(gates: Iterable[SendGate]) -> dict[str, int]:
    """Messages not sent after a timed-out wait, per ``receiver/input`` (only those with some).

    Example:
        >>> gate = SendGate("a", "b", {"out": {"x": (0, 0.0)}}); gate.admit(b"out")
        False
        >>> gate_statistics([gate])
        {'b/x': 1}
    """
    return {f"{g.peer}/{i}": n for g in gates for i, n in list(g.timeouts.items()) if n}
