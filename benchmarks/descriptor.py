"""How long `doradus check`'s loader takes on dataflow files of 10 and 100 nodes.

Run with `make bench-descriptor`. Prints the median and the spread of 50 loads of each file
(after one warm-up load, which pays the imports). Doradus only: dora-rs validates in Rust
inside `dora run` and exposes no loader to time on its own.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from doradus._dataflow.loader import load_dataflow

LOADS = 50


def dataflow_text(nodes: int) -> str:
    """A dataflow of ``nodes`` chained nodes, each with a timer, an env entry and one output."""
    body = "".join(
        f"  - id: n{i}\n    path: {sys.executable}\n    inputs:\n      tick: dora/timer/millis/10\n"
        f"      prev: n{max(i - 1, 0)}/out\n    outputs: [out]\n    env: {{A: '1'}}\n"
        for i in range(nodes)
    )
    return "nodes:\n" + body


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        for nodes in (10, 100):
            file = Path(folder) / f"flow{nodes}.yml"
            file.write_text(dataflow_text(nodes))
            load_dataflow(file)
            timings = []
            for _ in range(LOADS):
                started = time.perf_counter()
                load_dataflow(file)
                timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            print(
                f"{nodes:4d} nodes: median {statistics.median(timings):.2f} ms "
                f"(min {timings[0]:.2f}, p90 {timings[int(0.9 * LOADS)]:.2f}) over {LOADS} loads"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
