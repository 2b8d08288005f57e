"""Sends ROWS energy-meter readings from 50 meters, BATCH readings per Arrow record batch."""

import os
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from doradus import Node

ROWS = int(os.environ.get("ROWS", "1000000"))
BATCH = int(os.environ.get("BATCH", "1000"))
METERS = 50
START = datetime(2026, 1, 1, tzinfo=UTC)

node = Node()
for first in range(0, ROWS, BATCH):
    seqs = range(first, min(first + BATCH, ROWS))
    batch = pa.RecordBatch.from_pydict(
        {
            "meter": [f"meter-{seq % METERS:02d}" for seq in seqs],
            "seq": pa.array(seqs, pa.int64()),
            "kwh": [round(0.25 + (seq % 7) * 0.125, 3) for seq in seqs],  # exact in binary: sums check
            "taken_at": pa.array([START + timedelta(seconds=seq) for seq in seqs], pa.timestamp("us", "UTC")),
        }
    )
    node.send_output("readings", batch)
print(f"sent {ROWS} readings")
