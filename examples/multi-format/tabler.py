"""Gathers Avro health records into Arrow record batches of WINDOW rows (columnar, for analytics)."""

import os

import pyarrow as pa

from doradus import Input, Node

WINDOW = int(os.environ.get("WINDOW", "100"))

node = Node()
rows: list[dict[str, object]] = []


def flush() -> None:
    """Send the rows gathered so far as one Arrow record batch."""
    if rows:
        node.send_output("table", pa.RecordBatch.from_pylist(rows))
        rows.clear()


for event in node:
    if isinstance(event, Input):
        rows.append(event.value)  # a dict, read with the v2 schema: `unit` is filled in
        if len(rows) == WINDOW:
            flush()
flush()
