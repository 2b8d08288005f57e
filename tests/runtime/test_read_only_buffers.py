"""A value received through shared memory cannot be written, through either node API.

(The native API's 40 MiB case, with the mapping's permissions, is in test_delivery.py.)
"""

from __future__ import annotations

import pytest

SENDER = """
import numpy as np
from doradus import Node

node = Node()
node.send_output("big", np.full(1 << 20, 7, np.uint8))  # 1 MiB: above the inline limit
"""

WRITES = """
import numpy as np


def refused(write):
    try:
        write()
    except (ValueError, TypeError) as exc:  # numpy: ValueError; memoryview: TypeError
        return type(exc).__name__
    return "written"


def attempts(value):
    buffer = value.buffers()[1]
    array = value.to_numpy(zero_copy_only=True)
    results = [
        refused(lambda: array.__setitem__(0, 1)),
        refused(lambda: np.frombuffer(buffer, np.uint8).__setitem__(0, 1)),
        refused(lambda: memoryview(buffer).__setitem__(0, 1)),
        refused(lambda: np.asarray(array).setflags(write=True)),
    ]
    return buffer.is_mutable, results, int(array[0])
"""

NATIVE_RECEIVER = (
    WRITES
    + """
from doradus import Input, Node

for event in Node():
    if isinstance(event, Input):
        print(*attempts(event.value))
"""
)

DORA_RECEIVER = (
    WRITES
    + """
from dora import Node

for event in Node():
    if event["type"] == "INPUT":
        print(*attempts(event["value"]))
"""
)


@pytest.mark.parametrize("receiver", [NATIVE_RECEIVER, DORA_RECEIVER], ids=["doradus", "dora"])
def test_writing_into_a_received_shared_buffer_raises(dataflow, receiver):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: sender
                path: sender.py
                outputs: [big]
              - id: receiver
                path: receiver.py
                inputs:
                  big: sender/big
            """,
            "sender.py": SENDER,
            "receiver.py": receiver,
        }
    )
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("receiver") == ["False ['ValueError', 'ValueError', 'TypeError', 'ValueError'] 7"]
