"""Sends ten greetings, one per timer tick, then exits."""

import pyarrow as pa

from doradus import Input, Node

node = Node()
node.send_output("greeting", pa.array(["hello, I am the sender"]))  # arrives: Node() waits for wiring
count = 0
for event in node:
    if isinstance(event, Input) and event.id == "tick":
        count += 1
        node.send_output("greeting", pa.array([f"hello #{count}"]), {"count": count})
        if count == 10:
            break
print(f"sent {count + 1} greetings")
