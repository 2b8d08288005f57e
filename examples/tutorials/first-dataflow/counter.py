"""Sends 1, 2, 3, ... on `number`, one per tick; stops after $COUNT numbers if set."""

import os

from doradus import Input, Node

limit = int(os.environ.get("COUNT", "0"))  # 0: run until stopped
node = Node()
sent = 0
for event in node:
    if isinstance(event, Input) and event.id == "tick":
        sent += 1
        node.send_output("number", [sent])
        if sent == limit:
            break
print(f"sent {sent} numbers")
