"""Reduces each batch it gets to (batch, count, sum, min, max), reading the values in place."""

import numpy as np
import pyarrow as pa

from doradus import Input, Node

node = Node()
for event in node:
    if isinstance(event, Input) and event.id == "batch":
        values = event.value.to_numpy(zero_copy_only=True)  # a read-only view of shared memory
        partial = pa.array(
            [
                event.metadata["batch"],
                len(values),
                int(values.sum(dtype=np.int64)),
                int(values.min()),
                int(values.max()),
            ],
            type=pa.int64(),
        )
        node.send_output("partial", partial)
