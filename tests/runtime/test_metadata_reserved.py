"""The `timestamp` metadata key always holds the message's send time, in real processes."""

from __future__ import annotations

import json

SENDER = """
from datetime import UTC, datetime

from doradus import MetadataError, Node

node = Node()
try:
    node.send_output("out", [1], {"timestamp": "yesterday"})
except MetadataError as exc:
    print("refused:", "reserved for the send time" in str(exc))
# What a dora node does when it forwards the metadata it received: the old time stays behind.
node.send_output("out", [2], {"timestamp": datetime(2000, 1, 1, tzinfo=UTC), "seq": 2})
"""

RECEIVER = """
import json
from datetime import UTC, datetime, timedelta

from doradus import Input, Node

for event in Node():
    if isinstance(event, Input):
        stamp = event.metadata["timestamp"]
        age = datetime.now(UTC) - stamp
        recent = timedelta(0) <= age < timedelta(minutes=1)
        seq = event.metadata.get("seq")
        print(json.dumps({"value": event.value.to_pylist(), "seq": seq, "recent": recent,
                          "aware": stamp.tzinfo is not None}))
"""


def test_timestamp_is_the_send_time_and_cannot_be_replaced(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: sender
                path: sender.py
                outputs: [out]
              - id: receiver
                path: receiver.py
                inputs:
                  out: sender/out
            """,
            "sender.py": SENDER,
            "receiver.py": RECEIVER,
        }
    )
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("sender") == ["refused: True"]
    received = [json.loads(line) for line in ran.lines_of("receiver")]
    assert received == [{"value": [2], "seq": 2, "recent": True, "aware": True}]
