"""Deals POINTS int64 data points, BATCH at a time, round-robin to every `batch-*` output.

Each batch is written straight into shared memory (`node.allocate`) and sent without a copy;
the workers read it in place. A worker gets a new batch only when the reducer has returned a
credit for one of its earlier ones, so at most WINDOW batches per worker are in flight.
"""

import os
import time

import numpy as np
import pyarrow as pa

from doradus import Input, Node

POINTS = int(os.environ.get("POINTS", "200000000"))
BATCH = int(os.environ.get("BATCH", "100000"))
WINDOW = int(os.environ.get("WINDOW", "4"))

node = Node()
outputs = sorted(o for o in node.node_config()["outputs"] if o.startswith("batch-"))
in_flight = dict.fromkeys(range(len(outputs)), 0)
batches = (POINTS + BATCH - 1) // BATCH
sent = credited = 0


def send(worker: int) -> None:
    """Fill the next batch in shared memory and send it to this worker."""
    global sent
    start = sent * BATCH
    stop = min(start + BATCH, POINTS)
    buffer = node.allocate((stop - start) * 8)  # uint8 numpy array in shared memory
    values = buffer.view(np.int64)
    values[:] = np.arange(start, stop, dtype=np.int64)
    node.send_output(outputs[worker], pa.array(values), {"batch": sent})
    sent += 1
    in_flight[worker] += 1


began = time.perf_counter()
for _ in range(WINDOW):  # open every worker's window, round-robin
    for worker in in_flight:
        if sent < batches:
            send(worker)
while credited < batches:
    event = node.next()
    if event is None:
        raise SystemExit(f"the dataflow ended after {credited} of {batches} credits")
    if isinstance(event, Input) and event.id == "credit":
        worker = event.value[0].as_py()
        credited += 1
        in_flight[worker] -= 1
        if sent < batches:
            send(worker)
seconds = time.perf_counter() - began
messages = 3 * batches  # a batch, a partial result and a credit per batch
print(
    f"{POINTS:,} points in {batches:,} batches over {len(outputs)} workers in {seconds:.2f} s: "
    f"{POINTS / seconds:,.0f} points/s, {batches / seconds:,.0f} batches/s, "
    f"{messages / seconds:,.0f} messages/s"
)
