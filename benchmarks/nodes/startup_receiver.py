"""Reads until the end of the stream, then exits (the start-up scenario)."""

from __future__ import annotations

import json
import os

from dora import Node

node = Node()
received = 0
while (event := node.next()) is not None:
    received += event["type"] == "INPUT"
with open(os.environ["BENCH_OUT"], "w") as f:
    json.dump({"received": received}, f)
