"""Helpers shared by the benchmark nodes (imported from the script's own folder).

The nodes are written against dora-rs's Python API (`from dora import Node`, dict events)
and run unchanged under `dora run` and `doradus run`. They are configured by environment
variables that the harness puts in the dataflow's `env:`, and write what they measured as
JSON to the file named by `BENCH_OUT`. The raw IPC anchors (`benchmarks/anchor_nodes/`) share
these helpers, without pyarrow (imported only where an Arrow array is made or read).
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa


def env_int(name: str, default: int = 0) -> int:
    return int(os.environ.get(name, default))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def sizes() -> list[int]:
    return [int(s) for s in env_str("BENCH_SIZES", "8").split(",") if s]


def write_result(data: dict[str, Any]) -> None:
    """Write `data` as JSON to `$BENCH_OUT` (atomically: the harness never sees half a file)."""
    path = os.environ["BENCH_OUT"]
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def payload(size: int) -> tuple[np.ndarray, pa.Array]:
    """One preallocated payload per size: a numpy buffer and a UInt8Array over it (no copy).

    Writing the stamp into the numpy buffer changes the Arrow array too, so each send
    reuses the same memory instead of building a new payload.
    """
    import pyarrow as pa

    buf = np.zeros(max(size, 8), dtype=np.uint8)
    buf[8:] = 0xA5
    arr = pa.array(buf[:size])
    assert arr.buffers()[1].address == buf.ctypes.data, "pa.array copied the payload"
    return buf, arr


def read_stamp(value: pa.Array) -> int:
    """The int64 stamp in the first 8 bytes of a UInt8Array, read without copying it."""
    data = value.buffers()[1]
    return int(np.frombuffer(data, dtype="<i8", count=1, offset=value.offset)[0])


def gap_s(size: int) -> float:
    """Pause after each acknowledged message, so every send starts from an idle system."""
    if size <= 64 * 1024:
        return 0.005
    if size <= 4 * 1024 * 1024:
        return 0.010
    return 0.020


class Acks:
    """Flow control: wait until every receiver has acknowledged the last message.

    Each receiver echoes the stamp it read on its `ack` output, so nothing can queue up
    between two measured messages, whatever the framework's latency. Works with both
    frameworks' `next(timeout)`: dora-rs returns an ERROR event on timeout, Doradus `None`.
    """

    def __init__(self, node: Any, expected: int) -> None:
        self.node = node
        self.expected = expected
        self.timeouts = 0
        self.closed = expected == 0

    def wait(self, stamp: int, timeout: float) -> None:
        if self.closed:
            return
        got = 0
        deadline = time.monotonic() + timeout
        while got < self.expected:
            left = deadline - time.monotonic()
            if left <= 0:
                self.timeouts += 1
                return
            event = self.node.next(timeout=left)
            if event is None:
                # Doradus: timeout or end of stream. dora-rs: end of stream.
                if time.monotonic() < deadline:
                    self.closed = True
                else:
                    self.timeouts += 1
                return
            kind = event["type"]
            if kind == "INPUT":
                if event["value"][0].as_py() == stamp:
                    got += 1
            elif kind == "ERROR":
                self.timeouts += 1
                return
            elif kind in ("INPUT_CLOSED", "STOP"):
                self.closed = True
                return


def wait_input(node: Any, input_id: str, timeout: float) -> bool:
    """Wait (bounded) until input `input_id` delivers a message; False on timeout or end.

    With both frameworks' `next(timeout)`: dora-rs returns an ERROR event on timeout,
    Doradus `None`.
    """
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        event = node.next(timeout=left)
        if event is None or event["type"] in ("STOP", "INPUT_CLOSED"):
            return False
        if event["type"] == "INPUT" and event["id"] == input_id:
            return True
    return False


def stream(send: Any, count: int, rate_hz: float, duration_s: float) -> tuple[int, int, int]:
    """Call `send()` `count` times (paced at `rate_hz`, or back to back when 0), or back to back
    for `duration_s` when `count` is 0. Returns (messages sent, start ns, end ns)."""
    sent = 0
    start = time.monotonic_ns()
    if count and rate_hz > 0:
        period = int(1e9 / rate_hz)
        due = start
        for _ in range(count):
            send()
            due += period
            delay = due - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
        sent = count
    elif count:
        for _ in range(count):
            send()
        sent = count
    else:
        end = start + int(duration_s * 1e9)
        while True:
            for _ in range(64):
                send()
            sent += 64
            if time.monotonic_ns() >= end:
                break
    return sent, start, time.monotonic_ns()
