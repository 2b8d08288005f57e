"""Steering a running dataflow through its supervisor: pause, resume and restart one node."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import assert_nothing_left, shm_entries, write_files

from doradus._dataflow.loader import load_dataflow
from doradus._ids import new_run_id
from doradus._runtime.actions import NodeActionError, RestartNotSupported
from doradus._runtime.supervisor import LocalDaemon

REPORT = 1.0
"""Seconds between two ``stats`` reports of a node."""
PAYLOAD = 100_000
"""Bytes of each message of the chain: past the inline limit, they travel in shared memory."""

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
          X: "1"
      - id: sink
        path: sink.py
        inputs:
          x:
            source: middle/out
            queue_size: 5
"""
SOURCE_PY = f"""
    import numpy as np
    from doradus import Input, Node

    node = Node()
    n = 0
    for event in node:
        if isinstance(event, Input):
            n += 1
            node.send_output("out", np.full({PAYLOAD}, n % 251, dtype=np.uint8), {{"seq": n}})
"""
MIDDLE_PY = """
    import os
    from doradus import Input, InputClosed, Node

    node = Node()
    print(f"middle restart={node.is_restart()} count={node.restart_count()} X={os.environ['X']}", flush=True)
    for event in node:
        if isinstance(event, Input):
            node.send_output("out", event.value, event.metadata)  # passed on as it came
        elif isinstance(event, InputClosed):
            print(f"middle saw InputClosed {event.id}", flush=True)
"""
SINK_PY = """
    from doradus import Input, InputClosed, Node

    last = 0
    for event in Node():
        if isinstance(event, Input):
            seq = event.metadata["seq"]
            if seq <= last:
                print(f"sink out of order {seq} after {last}", flush=True)
            last = seq
        elif isinstance(event, InputClosed):
            print(f"sink saw InputClosed {event.id}", flush=True)
"""


class Run:
    """A `LocalDaemon` running the chain, and the records it made."""

    def __init__(self, folder: Path) -> None:
        write_files(
            folder,
            {"dataflow.yml": CHAIN, "source.py": SOURCE_PY, "middle.py": MIDDLE_PY, "sink.py": SINK_PY},
        )
        run_id = new_run_id()
        self.records: list[dict[str, Any]] = []
        self.daemon = LocalDaemon(
            load_dataflow(folder / "dataflow.yml"),
            run_id=run_id,
            out_dir=folder / "out" / run_id,
            on_record=self.records.append,
        )

    def node(self, node_id: str) -> dict[str, Any]:
        return self.daemon.node_metrics()[node_id]

    def delivered(self, node_id: str) -> int:
        return int(self.node(node_id).get("inputs", {}).get("x", {}).get("delivered", 0))

    def lines(self, node_id: str) -> list[str]:
        return [r["message"] for r in self.records if r.get("node") == node_id and r["source"] != "runtime"]


def eventually(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Run]:
    before = shm_entries()
    run = Run(tmp_path)
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
    assert not [line for line in run.lines("sink") if "out of order" in line]


def test_a_paused_node_is_delivered_nothing_while_its_sender_goes_on(chain: Run) -> None:
    chain.daemon.pause_node("sink")
    assert chain.node("sink")["state"] == "paused"
    # Once a report interval passed wholly paused, the count reported stands still.
    assert eventually(lambda: chain.node("sink")["input_rate"] == 0.0, 5 * REPORT)
    held = chain.delivered("sink")
    sent = chain.node("middle")["outputs"]["out"]["sent"]
    assert eventually(lambda: chain.node("middle")["outputs"]["out"]["sent"] > sent + 2 * 50, 10 * REPORT)
    assert eventually(lambda: chain.node("sink")["inputs"]["x"]["received"] > held + 2 * 50, 5 * REPORT)
    assert chain.delivered("sink") == held
    sink = chain.node("sink")
    assert sink["dropped"] > 0
    assert sink["queued"] == 5  # its queue_size: full, the oldest dropped as more arrive

    chain.daemon.resume_node("sink")
    assert chain.node("sink")["state"] == "running"
    assert eventually(lambda: chain.delivered("sink") > held + 50, 5 * REPORT)
    assert eventually(lambda: (chain.node("sink")["input_rate"] or 0) > 0, 5 * REPORT)


def test_restarting_the_middle_of_a_chain_keeps_it_wired(chain: Run) -> None:
    chain.daemon.restart_node("middle", env={"X": "2"})
    middle = chain.node("middle")
    assert middle["restarts"] == 1
    assert middle["state"] in ("starting", "running")
    before = chain.delivered("sink")
    # The sink goes on receiving from the new process; the counters of the old one are gone.
    assert eventually(lambda: chain.delivered("sink") > before + 50, 10 * REPORT)
    assert eventually(lambda: chain.delivered("middle") > 50, 10 * REPORT)
    assert "middle restart=False count=0 X=1" in chain.lines("middle")
    assert "middle restart=True count=1 X=2" in chain.lines("middle")
    assert not [line for line in chain.lines("sink") + chain.lines("middle") if "InputClosed" in line]
    assert chain.node("middle")["restart_dropped"] >= 0
    assert chain.node("sink")["state"] == "running"


def test_a_restart_with_new_arguments_reaches_the_new_process(chain: Run) -> None:
    chain.daemon.restart_node("sink", args="--verbose 'two words'")
    assert chain.node("sink")["restarts"] == 1
    assert eventually(lambda: chain.delivered("sink") > 50, 10 * REPORT)
    spec = chain.daemon.state.specs["sink"]
    assert spec.args == ("--verbose", "two words")


def test_actions_on_unknown_or_unrestartable_nodes_are_refused(chain: Run) -> None:
    with pytest.raises(NodeActionError, match="has no node 'ghost'") as missing:
        chain.daemon.pause_node("ghost")
    assert missing.value.status == 404
    specs = chain.daemon.state.specs
    specs["middle"] = dataclasses.replace(specs["middle"], communication="tcp")  # as if it sent on tcp
    with pytest.raises(RestartNotSupported, match="'tcp' backend") as refused:
        chain.daemon.restart_node("sink")
    assert "use the shm backend" in str(refused.value)
    assert chain.node("sink")["restarts"] == 0
    assert chain.node("sink")["state"] == "running"  # nothing was stopped


DORA_TICKER = """
    nodes:
      - id: ticker
        path: ticker.py
        inputs:
          x: dora/timer/millis/10
"""
DORA_TICKER_PY = """
    from dora import Node

    node = Node()
    print(f"dora restart={node.is_restart()} count={node.restart_count()}", flush=True)
    for event in node:
        pass
"""


def test_a_node_on_the_dora_api_pauses_and_restarts_too(tmp_path: Path) -> None:
    write_files(tmp_path, {"dataflow.yml": DORA_TICKER, "ticker.py": DORA_TICKER_PY})
    before = shm_entries()
    run_id = new_run_id()
    records: list[dict[str, Any]] = []
    daemon = LocalDaemon(
        load_dataflow(tmp_path / "dataflow.yml"),
        run_id=run_id,
        out_dir=tmp_path / "out" / run_id,
        on_record=records.append,
    )

    def delivered() -> int:
        return int(daemon.node_metrics()["ticker"].get("inputs", {}).get("x", {}).get("delivered", 0))

    daemon.start()
    try:
        assert eventually(lambda: delivered() > 20, 10 * REPORT)
        daemon.pause_node("ticker")
        assert eventually(lambda: daemon.node_metrics()["ticker"]["input_rate"] == 0.0, 5 * REPORT)
        held = delivered()
        # its timer goes on ticking into the queue, which drops the oldest: counted
        assert eventually(lambda: (daemon.node_metrics()["ticker"]["dropped"] or 0) > 20, 5 * REPORT)
        assert delivered() == held
        daemon.resume_node("ticker")
        assert eventually(lambda: delivered() > held + 20, 5 * REPORT)
        daemon.restart_node("ticker")
        assert eventually(lambda: delivered() > 20, 10 * REPORT)
    finally:
        daemon.request_stop()
        if not daemon.wait(10.0):
            daemon.kill()
        daemon.close()
    assert_nothing_left(before, tmp_path)
    lines = [r["message"] for r in records if r.get("node") == "ticker"]
    assert "dora restart=False count=0" in lines
    assert "dora restart=True count=1" in lines


def test_a_stopped_node_ends_for_good_and_its_readers_see_its_output_close(chain: Run) -> None:
    chain.daemon.stop_node("middle", grace=2.0)
    assert chain.node("middle")["state"] == "stopped"
    assert chain.node("middle")["exit_code"] == 0  # it ended on its Stop event, within the grace
    assert eventually(lambda: "sink saw InputClosed x" in chain.lines("sink"), 5 * REPORT)
    assert chain.node("source")["state"] == "running"  # the rest of the dataflow runs on
    assert not [line for line in chain.lines("middle") if "InputClosed" in line]
    with pytest.raises(NodeActionError) as refused:
        chain.daemon.stop_node("middle")
    assert refused.value.status == 409
