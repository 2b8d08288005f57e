"""What a tap costs the node it reads: `doradus topic hz` / `echo` attached, against none.

One real two-node dataflow per row (`doradus run`): a producer that, once told to go, sends
messages to a sink that takes them (``queue_size`` 1,000,000: nothing dropped), and reports
what its own sending cost:

- ``flat``: N messages back to back; figures are wall µs per ``send_output`` and the CPU µs
  of the producer's sending thread per message (``time.thread_time``);
- ``paced``: one message per millisecond for 3 s; the figure is the whole producer process's
  CPU (all its threads: ``time.process_time``) per message.

Payloads above 64 KiB are sent from `node.allocate()` (shared memory, no copy), so the rows
show what the tap adds to sending rather than the copy of the payload.

Each row runs with no tap, with ``doradus topic hz`` (a headers tap) and with ``doradus topic
echo > /dev/null`` (a full tap) attached before the producer starts. Medians of ``--rounds``.
A tap that cannot keep up skips messages (counted) instead of slowing the producer: with
``flat`` 8 B messages the echo reader cannot, so that row measures the skipping path too.

    .venv/bin/python benchmarks/topics.py                 # prints a Markdown table
    .venv/bin/python benchmarks/topics.py --rounds 1 --sizes 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

DORADUS = [sys.executable, "-m", "doradus.cli"]
PRODUCER = """
    import json, os, time
    from pathlib import Path
    import numpy as np
    from doradus import Node

    node = Node()
    size, mode, count = int(os.environ["SIZE"]), os.environ["MODE"], int(os.environ["COUNT"])
    go = Path(os.environ["GO"])
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    data = np.zeros(size, np.uint8)
    shared = size > 65536  # sent from shared memory without a copy, as a camera would
    wall, cpu, proc = time.perf_counter(), time.thread_time(), time.process_time()
    if mode == "flat":
        for _ in range(count):
            node.send_output("out", node.allocate(size) if shared else data)
    else:
        start = time.monotonic()
        for k in range(count):
            time.sleep(max(0.0, start + k * 0.001 - time.monotonic()))
            node.send_output("out", node.allocate(size) if shared else data)
    wall, cpu, proc = time.perf_counter() - wall, time.thread_time() - cpu, time.process_time() - proc
    figures = {"wall_us": wall, "thread_cpu_us": cpu, "process_cpu_us": proc}
    Path(os.environ["BENCH_OUT"]).write_text(json.dumps({k: v / count * 1e6 for k, v in figures.items()}))
"""
SINK = """
    from doradus import Node

    for event in Node():
        pass
"""
DATAFLOW = """
    nodes:
      - id: producer
        path: producer.py
        outputs: [out]
        env: {{SIZE: "{size}", MODE: {mode}, COUNT: "{count}", GO: "{go}", BENCH_OUT: "{out}"}}
      - id: sink
        path: sink.py
        inputs:
          x: {{source: producer/out, queue_size: 1000000}}
"""
TAPS = {"none": None, "hz": ["topic", "hz", "producer/out"], "echo": ["topic", "echo", "producer/out"]}


def _one(folder: Path, size: int, mode: str, tap: str, count: int) -> dict[str, float]:
    """One run: the producer's figures with ``tap`` attached before it starts."""
    go, out = folder / "go", folder / "out.json"
    go.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    (folder / "producer.py").write_text(textwrap.dedent(PRODUCER))
    (folder / "sink.py").write_text(textwrap.dedent(SINK))
    flow = DATAFLOW.format(size=size, mode=mode, count=count, go=go, out=out)
    (folder / "dataflow.yml").write_text(textwrap.dedent(flow))
    runtime = folder / "rt"  # a runtime folder of its own: other runs of this machine stay out of sight
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "NO_COLOR": "1", "XDG_RUNTIME_DIR": str(runtime)}
    run = subprocess.Popen([*DORADUS, "run", "dataflow.yml"], cwd=folder, env=env, stdout=subprocess.DEVNULL)
    reader = None
    try:
        _wait_for_topics(folder, env)
        command = TAPS[tap]
        if command is not None:
            reader = subprocess.Popen([*DORADUS, *command], cwd=folder, env=env, stdout=subprocess.DEVNULL)
            time.sleep(1.5)  # the tap is attached
        go.touch()
        run.wait(timeout=300)
    finally:
        for process in (reader, run):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    figures: dict[str, float] = json.loads(out.read_text())
    return figures


def _wait_for_topics(folder: Path, env: dict[str, str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = subprocess.run(
            [*DORADUS, "topic", "list", "--no-rates", "--output", "json"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if listed.returncode == 0 and '"running"' in listed.stdout:
            return
        time.sleep(0.2)
    raise TimeoutError("the dataflow did not start")


def main() -> None:
    """Run the rows and print a Markdown table of medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="8,65536,4194304")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[tuple[str, str, str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="dx-topics-") as tmp:
        folder = Path(tmp)
        for mode in ("flat", "paced"):
            for size in sizes:
                count = 3000 if mode == "paced" else (20000 if size <= 65536 else 2000)
                for tap in TAPS:
                    runs = [_one(folder, size, mode, tap, count) for _ in range(args.rounds)]
                    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                    rows.append((mode, _size(size), tap, median))
                    print(
                        mode, _size(size), tap, {k: round(v, 2) for k, v in median.items()}, file=sys.stderr
                    )
    print("| mode | payload | tap | wall µs/msg | send-thread CPU µs/msg | process CPU µs/msg |")
    print("|---|---|---|---:|---:|---:|")
    for mode, size_name, tap, m in rows:
        figures = f"{m['wall_us']:.1f} | {m['thread_cpu_us']:.1f} | {m['process_cpu_us']:.1f}"
        print(f"| {mode} | {size_name} | {tap} | {figures} |")


def _size(size: int) -> str:
    return {8: "8 B", 65536: "64 KiB", 4194304: "4 MiB"}.get(size, f"{size} B")


if __name__ == "__main__":
    main()
