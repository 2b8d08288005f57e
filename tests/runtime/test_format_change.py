"""A running node's data format changed live: its restart re-encodes, its receivers re-decode.

A shm chain source (Arrow) → middle → sink runs under a real `LocalDaemon`; ``middle`` is
restarted with ``data_format: avro`` and a schema file. The sink goes on receiving without an
``InputClosed``, now in Avro, and the run's record (specs, ``edges.json``, the run folder's
``dataflow.yml``, the node's ``data_formats``) says so. Refused changes stop nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import assert_nothing_left, shm_entries, write_files

from doradus._dataflow.loader import load_dataflow
from doradus._ids import new_run_id
from doradus._runtime.actions import NodeActionError
from doradus._runtime.supervisor import LocalDaemon

REPORT = 1.0
"""Seconds between two ``stats`` reports of a node."""

CHAIN = """
    nodes:
      - id: source
        path: source.py
        inputs:
          tick: dora/timer/millis/10
        outputs: [out]
      - id: middle
        path: middle.py
        inputs:
          x: source/out
        outputs: [out]
        env:
          FORMAT: arrow
      - id: sink
        path: sink.py
        inputs:
          x: middle/out
"""
READING_AVSC = json.dumps(
    {"type": "record", "name": "Reading", "fields": [{"name": "seq", "type": "long"}]}, indent=2
)
SOURCE_PY = """
    import pyarrow as pa
    from doradus import Input, Node

    node = Node()
    n = 0
    for event in node:
        if isinstance(event, Input):
            n += 1
            node.send_output("out", pa.array([n]))
"""
# It sends in the format its FORMAT says (set with the format by the same `node set`).
MIDDLE_PY = """
    import os
    import pyarrow as pa
    from doradus import Input, InputClosed, Node

    node = Node()
    avro = os.environ["FORMAT"] == "avro"
    print(f"middle restart={node.is_restart()} FORMAT={os.environ['FORMAT']}", flush=True)
    for event in node:
        if isinstance(event, Input):
            seq = event.value.to_pylist()[0]
            node.send_output("out", {"seq": seq} if avro else pa.array([seq]))
        elif isinstance(event, InputClosed):
            print(f"middle saw InputClosed {event.id}", flush=True)
"""
SINK_PY = """
    from doradus import Error, Input, InputClosed, Node

    shown = None
    count = 0
    for event in Node():
        if isinstance(event, Input):
            count += 1
            if event.data_format != shown or count % 50 == 0:
                shown = event.data_format
                print(f"sink {event.data_format} {event.to_python()}", flush=True)
        elif isinstance(event, InputClosed):
            print(f"sink saw InputClosed {event.id}", flush=True)
        elif isinstance(event, Error):
            print(f"sink error {event.message}", flush=True)
"""


class Chain:
    """A `LocalDaemon` running the chain, and the records it made."""

    def __init__(self, folder: Path) -> None:
        files = {"dataflow.yml": CHAIN, "source.py": SOURCE_PY, "middle.py": MIDDLE_PY, "sink.py": SINK_PY}
        write_files(folder, {**files, "reading.avsc": READING_AVSC})
        self.run_id = new_run_id()
        self.out = folder / "out" / self.run_id
        self.records: list[dict[str, Any]] = []
        self.daemon = LocalDaemon(
            load_dataflow(folder / "dataflow.yml"),
            run_id=self.run_id,
            out_dir=self.out,
            on_record=self.records.append,
        )

    def node(self, node_id: str) -> dict[str, Any]:
        return self.daemon.node_metrics()[node_id]

    def delivered(self, node_id: str) -> int:
        return int(self.node(node_id).get("inputs", {}).get("x", {}).get("delivered", 0))

    def lines(self, node_id: str) -> list[str]:
        return [r["message"] for r in self.records if r.get("node") == node_id and r["source"] != "runtime"]

    def avro_lines(self) -> list[str]:
        return [line for line in self.lines("sink") if line.startswith("sink avro ")]


def eventually(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    before = shm_entries()
    run = Chain(tmp_path)
    run.daemon.start()
    try:
        assert eventually(lambda: run.delivered("sink") > 10, 10 * REPORT)
        yield run
    finally:
        run.daemon.request_stop()
        if not run.daemon.wait(10.0):
            run.daemon.kill()
        run.daemon.close()
    assert_nothing_left(before, tmp_path)


def test_the_middle_of_a_chain_restarts_in_avro_and_the_sink_reads_it(chain: Chain) -> None:
    assert any(line.startswith("sink arrow [") for line in chain.lines("sink"))
    assert chain.node("middle")["data_formats"] == {"out": "arrow"}

    chain.daemon.restart_node("middle", env={"FORMAT": "avro"}, data_format="avro", schema="reading.avsc")

    assert chain.node("middle")["restarts"] == 1
    assert chain.node("middle")["data_formats"] == {"out": "avro (reading.avsc)"}
    assert eventually(lambda: len(chain.avro_lines()) >= 3, 10 * REPORT)
    assert chain.avro_lines()[0].startswith("sink avro {'seq': ")
    assert "middle restart=True FORMAT=avro" in chain.lines("middle")
    # Wired all along, and every message decoded: nothing closed, no error event.
    assert not [line for line in chain.lines("sink") + chain.lines("middle") if "InputClosed" in line]
    assert not [line for line in chain.lines("sink") if line.startswith("sink error")]
    assert chain.node("sink")["restarts"] == 0
    assert chain.node("sink")["errors"] == 0
    # The run's record follows: the receiver's spec, the edge, the run folder's text.
    assert chain.daemon.state.specs["sink"].input_formats["x"].name == "avro"
    edges = {e["target"]: e for e in chain.daemon.edges()}
    assert (edges["sink/x"]["data_format"], edges["middle/x"]["data_format"]) == ("avro", "arrow")
    assert "data_format: avro" in (chain.out / "dataflow.yml").read_text()
    told = [r for r in chain.records if r.get("fields", {}).get("event") == "data_format"]
    assert told[0]["fields"]["told"] == ["sink"]

    # Back to Arrow: the sink follows again.
    chain.daemon.restart_node("middle", env={"FORMAT": "arrow"}, data_format="arrow")
    seen = len(chain.lines("sink"))
    assert eventually(
        lambda: any(x.startswith("sink arrow [") for x in chain.lines("sink")[seen:]), 10 * REPORT
    )
    assert chain.node("sink")["errors"] == 0
    assert not [
        line for line in chain.lines("sink") if "InputClosed" in line or line.startswith("sink error")
    ]


@pytest.mark.parametrize(
    ("data_format", "schema", "says"),
    [
        ("avroo", None, "did you mean `avro`?"),
        ("avro", None, "data format `avro` needs a schema; add `schema: schemas/<file>.avsc`"),
        ("avro", "missing.avsc", "schema file"),
        ("arrow", "reading.avsc", "takes no schema"),
    ],
)
def test_a_refused_format_stops_nothing(
    chain: Chain, data_format: str, schema: str | None, says: str
) -> None:
    pid = chain.node("middle")["pid"]
    with pytest.raises(NodeActionError, match="the new data format of node 'middle' is refused") as refused:
        chain.daemon.restart_node("middle", data_format=data_format, schema=schema)
    assert refused.value.status == 422
    assert says in str(refused.value)
    middle = chain.node("middle")
    assert (middle["restarts"], middle["pid"], middle["state"]) == (0, pid, "running")
    assert middle["data_formats"] == {"out": "arrow"}
    before = chain.delivered("sink")
    assert eventually(lambda: chain.delivered("sink") > before + 20, 10 * REPORT)
    assert not chain.avro_lines()
