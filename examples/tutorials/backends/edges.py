"""Prints which backend carried each edge of the latest run (from out/<run-id>/edges.json)."""

import json
from pathlib import Path

latest = max(Path("out").iterdir(), key=lambda p: p.stat().st_mtime)
for edge in json.loads((latest / "edges.json").read_text()):
    print(f"{edge['source']} -> {edge['target']}: {edge['backend']}, {edge['messages']} messages")
