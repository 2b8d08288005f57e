"""Forwards every input unchanged on `out` (the middle of the chain)."""

from __future__ import annotations

from dora import Node

node = Node()
while True:
    event = node.next()
    if event is None:
        break
    if event["type"] == "INPUT":
        node.send_output("out", event["value"])
