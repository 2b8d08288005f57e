"""A three-node dataflow (timer source → transform → sink) and the CLI runs that record and replay it."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import DORADUS, Ran, assert_nothing_left, shm_entries, write_files

MESSAGES = 20
INTERVAL_MS = 20
PIPELINE = {
    "dataflow.yml": f"""
    nodes:
      - id: source
        path: source.py
        inputs:
          tick: dora/timer/millis/{INTERVAL_MS}
        outputs: [count]
      - id: transform
        path: transform.py
        inputs:
          count: source/count
        outputs: [doubled]
      - id: sink
        path: sink.py
        inputs:
          doubled: transform/doubled
    """,
    # Stops by itself after MESSAGES ticks: the run ends when its nodes do.
    "source.py": f"""
    from doradus import Input, Node
    node = Node()
    sent = 0
    for event in node:
        if isinstance(event, Input):
            sent += 1
            node.send_output("count", [sent], {{"seq": sent, "tags": ["a", "b"]}})
            if sent == {MESSAGES}:
                break
    """,
    # TRANSFORM_DELAY slows it down (its input queues 10 messages, the default).
    "transform.py": """
    import os, time
    import pyarrow as pa
    from doradus import Input, Node
    delay = float(os.environ.get("TRANSFORM_DELAY", "0"))
    node = Node()
    for event in node:
        if isinstance(event, Input):
            time.sleep(delay)
            value = event.value[0].as_py()
            batch = pa.RecordBatch.from_pydict({"x": [value * 2], "label": [f"n{value}"]})
            node.send_output("doubled", batch, {**event.metadata, "stage": "doubled"})
    """,
    # Writes what it receives (value, metadata, when) to $SINK_OUT; SINK_DELAY slows it down.
    "sink.py": """
    import json, os, time
    from doradus import Input, Node
    delay = float(os.environ.get("SINK_DELAY", "0"))
    with open(os.environ["SINK_OUT"], "w") as out:
        for event in Node():
            if isinstance(event, Input):
                time.sleep(delay)
                meta = {k: v for k, v in event.metadata.items() if k != "timestamp"}
                row = {"value": event.value.to_pylist(), "metadata": meta, "at": time.monotonic()}
                out.write(json.dumps(row) + "\\n")
                out.flush()
    """,
}


@dataclass
class Pipeline:
    """The dataflow's folder, and the CLI run on it."""

    folder: Path

    def doradus(self, *args: str, sink: str = "other.jsonl", timeout: float = 60, **env: str) -> Ran:
        before = shm_entries()
        done = subprocess.run(
            [*DORADUS, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.folder,
            env={**os.environ, "SINK_OUT": str(self.folder / sink), **env},
        )
        assert_nothing_left(before, self.folder)
        return Ran(done.returncode, done.stdout, done.stderr)

    def sink(self, name: str = "sink.jsonl") -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.folder / name).read_text().splitlines()]


def make_pipeline(folder: Path) -> Pipeline:
    write_files(folder, PIPELINE)
    return Pipeline(folder)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, Ran]:
    """The pipeline recorded once for the module's tests: ``run.mcap`` and ``sink.jsonl``."""
    pipeline = make_pipeline(tmp_path_factory.mktemp("pipeline"))
    ran = pipeline.doradus("record", "dataflow.yml", "-o", "run.mcap", "--no-color", sink="sink.jsonl")
    assert ran.returncode == 0, ran.output
    return pipeline, ran
