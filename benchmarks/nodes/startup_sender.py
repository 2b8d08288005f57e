"""Sends one message, then exits (the start-up scenario)."""

from __future__ import annotations

from dora import Node

node = Node()
node.send_output("out", b"hello")
