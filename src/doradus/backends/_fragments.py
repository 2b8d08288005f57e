"""Frames too big for a broker message travel as fragments, reassembled in order per topic.

Shared by the broker backends (Redis, MQTT).

Example:
    >>> r = Reassembler()
    >>> [r.feed("t", m) for m in split_frame([b"abcde"], 2, 7)][-1].tobytes()
    b'abcde'
"""

from __future__ import annotations

import struct
from typing import Any

from doradus.backends._frames import frame_size

WHOLE = b"\x00"
FRAGMENT = struct.Struct("<BQII")
"""kind (1), frame number, fragment index, fragment count; then the fragment's bytes."""
KIND_FRAGMENT = 1


def split_frame(parts: list[bytes | memoryview], limit: int, number: int) -> list[bytes]:
    r"""The messages that carry one frame: one if it fits ``limit`` bytes, else its fragments.

    Each message starts with a kind byte: ``0`` then the whole frame, or a
    `FRAGMENT` header then ``limit`` bytes of it (the last one fewer).

    Example:
        >>> [len(m) for m in split_frame([b"abcde"], 2, 7)]
        [19, 19, 18]
        >>> split_frame([b"ab", b"c"], 8, 0)
        [b'\x00abc']
    """
    if frame_size(parts) <= limit:
        return [b"".join([WHOLE, *parts])]
    data = memoryview(b"".join(parts))
    count = -(-len(data) // limit)
    return [
        FRAGMENT.pack(KIND_FRAGMENT, number, k, count) + data[k * limit : (k + 1) * limit]
        for k in range(count)
    ]


class Reassembler:
    """Turns the messages of `split_frame` back into frames, one partial frame per topic.

    Fragments of one frame arrive back to back on their topic; a repeated
    fragment (a retried publish or a re-sent QoS 1 message) is ignored, and a frame with a fragment
    missing is dropped whole and counted in ``dropped``. Not thread-safe:
    one receiving thread (or paho's loop thread) feeds it.

    Example:
        >>> r = Reassembler()
        >>> [r.feed("t", m) for m in split_frame([b"abcde"], 2, 7)][-1].tobytes()
        b'abcde'
    """

    def __init__(self) -> None:
        self._partial: dict[Any, tuple[int, int, bytearray]] = {}
        self.dropped = 0

    def feed(self, topic: Any, message: bytes | bytearray) -> memoryview | None:
        r"""The frame ``message`` completes on ``topic``, or ``None`` (more to come, or dropped).

        Example:
            >>> Reassembler().feed("t", b"\x00frame").tobytes()
            b'frame'
        """
        view = memoryview(message)
        if not view or view[0] != KIND_FRAGMENT:
            if topic in self._partial:  # a whole frame after an unfinished one: that one lost a piece
                del self._partial[topic]
                self.dropped += 1
            return view[1:]
        if len(view) < FRAGMENT.size:
            return None
        _kind, number, index, count = FRAGMENT.unpack_from(view)
        chunk = view[FRAGMENT.size :]
        held = self._partial.get(topic)
        if held is not None and held[0] == number and index == held[1] - 1:
            return None  # the same fragment again: a retried publish
        if index == 0:
            if held is not None:
                self.dropped += 1
            held = (number, 0, bytearray())
        elif held is None or held[0] != number or held[1] != index:
            if held is not None:
                del self._partial[topic]
                self.dropped += 1
            return None  # the start of this frame was lost
        buffer = held[2]
        buffer += chunk
        if index + 1 == count:
            self._partial.pop(topic, None)
            return memoryview(buffer)
        self._partial[topic] = (number, index + 1, buffer)
        return None
