"""`send_output` from eight threads at once, in real node processes: nothing mixed, lost or reordered.

Each thread sends a numbered sequence whose every element carries the thread and the message
number, on one output shared by every thread and on an output of its own, small values
(inline in a datagram) and large ones (in shared memory) mixed. The receiver's queues hold
every message, so exact counts are expected: a message whose elements disagree with each
other or with its metadata was interleaved with another; a missing or repeated number was
lost or doubled; numbers out of order break the per-thread order guarantee.
"""

from __future__ import annotations

import json

import pytest

THREADS = 8
PER_THREAD = 120
LARGE_EVERY = 10
"""Every tenth message is 128 KiB, above the inline limit: it travels in shared memory."""

SENDER_BODY = """
import threading
import numpy as np
import pyarrow as pa

THREADS, PER_THREAD, LARGE_EVERY = {threads}, {per_thread}, {large_every}
node = Node()
start = threading.Barrier(THREADS)


def value(t, i):
    # 16 int64 (inline) or 16384 (128 KiB, shared memory), every one naming the thread and number
    size = 16_384 if i % LARGE_EVERY == 0 else 16
    return pa.array(np.full(size, t * 1_000_000 + i, np.int64))


def worker(t, output):
    start.wait()
    for i in range(PER_THREAD):
        node.send_output(output(t), value(t, i), {{"thread": t, "seq": i}})


for output in (lambda t: "shared", lambda t: f"own{{t}}"):
    threads = [threading.Thread(target=worker, args=(t, output)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
outputs = getattr(node, "native", node).statistics()["outputs"]  # the dora Node keeps it on .native
print("sent", sum(counts["sent"] for counts in outputs.values()))
"""

NATIVE_SENDER = "from doradus import Node\n" + SENDER_BODY
DORA_SENDER = "from dora import Node\n" + SENDER_BODY

RECEIVER = """
import json
import numpy as np
from doradus import Input, Node

node = Node()
seen = {}  # (input, thread) -> message numbers in arrival order
broken = []
for event in node:
    if not isinstance(event, Input):
        continue
    t, i = event.metadata["thread"], event.metadata["seq"]
    values = event.value.to_numpy(zero_copy_only=True)
    expected = 16_384 if i % 10 == 0 else 16
    if len(values) != expected or not np.all(values == t * 1_000_000 + i):
        broken.append([event.id, t, i, len(values)])
    seen.setdefault(f"{event.id}/{t}", []).append(i)
dropped = sum(s["dropped"] for s in node.statistics()["inputs"].values())
print(json.dumps({"seen": seen, "broken": broken[:10], "dropped": dropped}))
"""


def _dataflow(sender: str, backend: str = "shm") -> dict[str, str]:
    outputs = ["shared", *(f"own{t}" for t in range(THREADS))]
    queue = THREADS * PER_THREAD  # room for every message: none may be dropped
    inputs = "\n".join(
        f"      {name}:\n        source: sender/{name}\n        queue_size: {queue}" for name in outputs
    )
    body = sender.format(threads=THREADS, per_thread=PER_THREAD, large_every=LARGE_EVERY)
    return {
        "dataflow.yml": (
            f"communication:\n  local: {backend}\n"
            "nodes:\n"
            "  - id: sender\n"
            "    path: sender.py\n"
            f"    outputs: [{', '.join(outputs)}]\n"
            "  - id: receiver\n"
            "    path: receiver.py\n"
            "    inputs:\n"
            f"{inputs}\n"
        ),
        "sender.py": body,
        "receiver.py": RECEIVER,
    }


def _check(ran) -> None:
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("sender") == [f"sent {2 * THREADS * PER_THREAD}"], ran.output
    (line,) = ran.lines_of("receiver")
    report = json.loads(line)
    assert report["broken"] == []  # every message intact: no interleaving
    assert report["dropped"] == 0
    expected = {f"shared/{t}" for t in range(THREADS)} | {f"own{t}/{t}" for t in range(THREADS)}
    assert set(report["seen"]) == expected  # each own output carries only its thread's messages
    for key, numbers in report["seen"].items():
        assert numbers == list(range(PER_THREAD)), key  # none lost or doubled, each thread's order kept


@pytest.mark.parametrize("backend", ["shm", "tcp"])
def test_eight_threads_send_on_one_node_without_mixing_losing_or_reordering(dataflow, backend):
    _check(dataflow(_dataflow(NATIVE_SENDER, backend), timeout=120))


def test_the_dora_api_sends_from_eight_threads_as_safely(dataflow):
    _check(dataflow(_dataflow(DORA_SENDER), timeout=120))
