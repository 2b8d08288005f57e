"""What the soak nodes share: numbered payloads, reading them back, and writing figures.

A payload is a ``uint8`` array whose first 16 bytes hold two little-endian int64: the epoch
(the sending process's ``node.restart_count()``, so a restarted source is told apart) and the
sequence number (0, 1, 2, … within an epoch). Nodes are configured by environment variables the
harness puts in the dataflow's ``env:`` and write JSON files the harness reads.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
import pyarrow as pa

STAMP_BYTES = 16


def env_int(name: str, default: int = 0) -> int:
    return int(float(os.environ.get(name, default)))


def env_float(name: str, default: float = 0.0) -> float:
    return float(os.environ.get(name, default))


def write_json(path: str | None, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (the harness never reads half a file); no path: nothing."""
    if not path:
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


class Stamped:
    """One preallocated payload of ``size`` bytes and a pyarrow array over it (no copy).

    `stamp` writes the epoch and sequence number into the buffer; the array sees them, so
    every send reuses the same memory (a send copies the bytes out before it returns).
    """

    def __init__(self, size: int) -> None:
        self.buf = np.zeros(max(size, STAMP_BYTES), dtype=np.uint8)
        self.buf[STAMP_BYTES:] = 0xA5  # pages touched once: the payload is really in memory
        self.words = self.buf[:STAMP_BYTES].view("<i8")
        self.array = pa.array(self.buf)
        assert self.array.buffers()[1].address == self.buf.ctypes.data, "pa.array copied the payload"

    def stamp(self, epoch: int, seq: int) -> pa.Array:
        self.words[0] = epoch
        self.words[1] = seq
        return self.array


def read_stamp(value: pa.Array) -> tuple[int, int]:
    """(epoch, sequence number) of a received payload, read without copying it."""
    words = np.frombuffer(value.buffers()[1], dtype="<i8", count=2, offset=value.offset)
    return int(words[0]), int(words[1])


def touch_pages(value: pa.Array) -> int:
    """Read one byte of every 4 KiB page of a payload (as a consumer working on it would)."""
    data = np.frombuffer(value.buffers()[1], dtype=np.uint8, count=len(value), offset=value.offset)
    return int(data[::4096].sum())


class Every:
    """True once every ``seconds`` (checked cheaply on each call)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.next = time.monotonic() + seconds

    def due(self) -> bool:
        now = time.monotonic()
        if now < self.next:
            return False
        self.next = now + self.seconds
        return True
