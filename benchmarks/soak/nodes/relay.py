"""Forwards every input unchanged on `out` (the middle of the chain); counts what it forwards."""

from __future__ import annotations

import os

from soaklib import write_json

from doradus import Input, Node

node = Node()
received = 0
send = node.send_output
for event in node:
    if isinstance(event, Input):
        received += 1
        send("out", event.value)
write_json(os.environ.get("SOAK_OUT"), {"received": received, "epoch": node.restart_count()})
