"""Shared memory under ``ulimit -n``: kept values cost no descriptors; a limit reached is named."""

from __future__ import annotations

import json

KEEPER_SENDER = """
import json, os, resource
import numpy as np
from doradus import Node

resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
COUNT, SIZE = 1500, 100 * 1024

def open_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # listing needs a descriptor too
        return 1024

node = Node()
most, errors = 0, []
for i in range(COUNT):
    value = np.full(SIZE, i % 251, np.uint8)
    value[:8] = np.frombuffer(np.int64(i).tobytes(), np.uint8)
    try:
        node.send_output("frame", value, {"i": i})
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
        break
    if i % 50 == 0:
        most = max(most, open_fds())
most = max(most, open_fds())
print("RESULT " + json.dumps({"sent": i + 1 - len(errors), "max_fds": most, "errors": errors}), flush=True)
"""

KEEPER_RECEIVER = """
import json, os, resource
import numpy as np
from doradus import Error, Input, Node

resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

def open_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # listing needs a descriptor too
        return 1024

node = Node()
kept, errors, most = [], [], 0
for event in node:
    if isinstance(event, Input):
        kept.append((event.metadata["i"], event.value.to_numpy(zero_copy_only=True)))  # a buffer of frames
        if len(kept) % 50 == 0:
            most = max(most, open_fds())
    elif isinstance(event, Error):
        errors.append(event.message)
most = max(most, open_fds())
intact = sum(
    1 for i, a in kept
    if len(a) == 100 * 1024 and int(a[:8].view(np.int64)[0]) == i and (a[8:] == i % 251).all()
)
try:
    with open(os.devnull):
        can_open = True
except OSError:
    can_open = False
print("RESULT " + json.dumps({
    "received": len(kept), "intact": intact, "in_order": [i for i, _ in kept] == list(range(len(kept))),
    "max_fds": most, "errors": errors, "can_open": can_open,
}), flush=True)
"""


def result_of(ran, node):
    lines = [line for line in ran.lines_of(node) if line.startswith("RESULT ")]
    assert lines, ran.output
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_a_receiver_keeping_1500_large_values_under_ulimit_1024(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: sender
                path: sender.py
                outputs: [frame]
              - id: receiver
                path: receiver.py
                inputs:
                  frame:
                    source: sender/frame
                    queue_size: 2000
            """,
            "sender.py": KEEPER_SENDER,
            "receiver.py": KEEPER_RECEIVER,
        },
        timeout=240,
    )
    assert ran.returncode == 0, ran.output
    sender, receiver = result_of(ran, "sender"), result_of(ran, "receiver")
    assert sender["errors"] == []
    assert sender["sent"] == 1500
    assert receiver["errors"] == []
    assert receiver["received"] == 1500
    assert receiver["intact"] == 1500
    assert receiver["in_order"]
    assert receiver["can_open"]
    # Well under the 1024 limit: a kept value holds no descriptor, only a mapping.
    assert sender["max_fds"] < 200, sender
    assert receiver["max_fds"] < 200, receiver


STARVED_SENDER = """
import os, resource
import numpy as np
from doradus import Input, Node
from doradus._exceptions import ResourceLimitError

resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
SIZE = 200_000
node = Node()

def value(tag, size=SIZE):
    return np.full(size, tag, np.uint8)

def wait_ack():
    for event in node:
        if isinstance(event, Input) and event.id == "ack":
            return event.value[0].as_py()
    raise SystemExit("no ack")

def fill():
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        return held

node.send_output("frame", value(1))      # kept by the receiver
assert wait_ack() == "filled"
node.send_output("frame", value(2))      # a new segment: its descriptor finds no free slot there
assert wait_ack() == "freed"
node.send_output("frame", value(3))      # flows again

held = fill()                            # now this node is out of descriptors
for attempt in ("send_output", "allocate"):
    try:
        if attempt == "send_output":
            node.send_output("frame", value(4, 1 << 20))
        else:
            node.allocate(1 << 20)
        print("NOERROR", attempt, flush=True)
    except ResourceLimitError as exc:
        print("LIMIT", attempt, exc.limit, "ulimit -n" in str(exc), flush=True)
    except Exception as exc:
        print("OTHER", attempt, type(exc).__name__, exc, flush=True)
for fd in held:
    os.close(fd)
node.send_output("frame", value(5, 1 << 20))  # and works again once descriptors are free
"""

STARVED_RECEIVER = """
import os, resource
import numpy as np
import pyarrow as pa
from doradus import Error, Input, Node

resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
node = Node()
kept, held = [], []

def fill():
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass

for event in node:
    if isinstance(event, Input):
        array = event.value.to_numpy(zero_copy_only=True)
        tag = int(array[0])
        print("GOT", tag, len(array), bool((array == tag).all()), flush=True)
        kept.append(array)
        if tag == 1:
            fill()
            node.send_output("ack", pa.array(["filled"]))
    elif isinstance(event, Error):
        print("ERROR", event.message, flush=True)
        for fd in held:
            os.close(fd)
        held.clear()
        node.send_output("ack", pa.array(["freed"]))
"""


def test_running_out_of_descriptors_is_a_resource_limit_error_naming_the_fix(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: sender
                path: sender.py
                inputs:
                  ack: receiver/ack
                outputs: [frame]
              - id: receiver
                path: receiver.py
                inputs:
                  frame: sender/frame
                outputs: [ack]
            """,
            "sender.py": STARVED_SENDER,
            "receiver.py": STARVED_RECEIVER,
        },
        timeout=120,
    )
    assert ran.returncode == 0, ran.output
    got = ran.lines_of("receiver")
    errors = [line for line in got if line.startswith("ERROR")]
    assert len(errors) == 1, ran.output
    assert "RLIMIT_NOFILE = 64" in errors[0]
    assert "ulimit -n" in errors[0]
    assert "malformed" not in errors[0]
    assert [line for line in got if line.startswith("GOT")] == [
        "GOT 1 200000 True",
        "GOT 3 200000 True",
        f"GOT 5 {1 << 20} True",
    ], ran.output
    assert ran.lines_of("sender") == [
        "LIMIT send_output RLIMIT_NOFILE True",
        "LIMIT allocate RLIMIT_NOFILE True",
    ]
