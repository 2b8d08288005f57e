"""A dora-rs node: `from dora import Node`, dict events, pyarrow values."""

import pyarrow as pa
from dora import Node

node = Node()
count = 0
for event in node:
    if event["type"] == "INPUT":
        count += 1
        node.send_output("speech", pa.array([f"message {count}"]), event["metadata"])
        if count == 3:
            break
