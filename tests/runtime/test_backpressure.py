"""``queue_policy: backpressure``: the receiver drops nothing, its sender waits (boundedly) instead.

Real processes on the ``shm`` and ``tcp`` backends. The contrast, a ``drop_oldest`` queue that
drops and counts, is tests/runtime/test_drops.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Ran, assert_nothing_left, run_ids, shm_entries, write_files
from tests.runtime.test_steering import REPORT, eventually

from doradus._dataflow.loader import load_dataflow
from doradus._ids import new_run_id
from doradus._runtime.supervisor import LocalDaemon

BACKENDS = ["shm", "tcp"]
MESSAGES = 60
QUEUE = 2


def _flow(backend: str, options: str) -> str:
    return f"""
    communication: {{local: {backend}}}
    nodes:
      - id: sender
        path: sender.py
        outputs: [n]
      - id: receiver
        path: receiver.py
        inputs:
          n: {{source: sender/n, queue_size: {QUEUE}, queue_policy: backpressure{options}}}
    """


SENDER = f"""
    from doradus import Node
    node = Node()
    for i in range({MESSAGES}):
        node.send_output("n", [i])
    print("sender finished", flush=True)
"""

# After taking each message it waits a little, giving a sender that could run ahead time to:
# one that waits for room has sent at most QUEUE messages more than the node took.
SLOW_RECEIVER = f"""
    import time
    from doradus import Input, Node
    node = Node()
    got, ahead = [], []
    for event in node:
        if isinstance(event, Input):
            got.append(event.value[0].as_py())
            time.sleep(0.005)
            stats = node.statistics()["inputs"]["n"]
            ahead.append(stats["received"] - stats["delivered"])
    stats = node.statistics()["inputs"]["n"]
    print("in order", got == list(range({MESSAGES})), flush=True)
    print("most ahead", max(ahead), flush=True)
    print("dropped", stats["dropped"], "timeouts", stats["backpressure_timeouts"], flush=True)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_slow_receiver_gets_every_message_in_order_and_its_sender_waits(
    dataflow: Callable[..., Ran], backend: str
) -> None:
    ran = dataflow({"dataflow.yml": _flow(backend, ""), "sender.py": SENDER, "receiver.py": SLOW_RECEIVER})
    assert ran.returncode == 0, ran.output
    lines = ran.lines_of("receiver")
    assert "in order True" in lines, ran.output
    assert "dropped 0 timeouts 0" in lines, ran.output
    # the sender never ran more than the queue ahead of what the receiver took
    (most,) = [int(line.split()[-1]) for line in lines if line.startswith("most ahead")]
    assert 0 <= most <= QUEUE, ran.output
    assert "sender finished" in ran.lines_of("sender")
    assert "not applied" not in ran.output


# Takes the first message, then stops taking until two of the sender's waits have timed out.
STUCK_RECEIVER = """
    import time
    from doradus import Input, Node
    node = Node()
    got = []
    deadline = time.monotonic() + 30
    for event in node:
        if isinstance(event, Input):
            got.append(event.value[0].as_py())
            while (
                len(got) == 1
                and node.statistics()["inputs"]["n"]["backpressure_timeouts"] < 2
                and time.monotonic() < deadline
            ):
                time.sleep(0.01)
    stats = node.statistics()["inputs"]["n"]
    print("got", len(got), "in order", got == sorted(got), flush=True)
    print("dropped", stats["dropped"], "timeouts", stats["backpressure_timeouts"], flush=True)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_wait_that_times_out_drops_the_message_counts_it_and_warns(
    dataflow: Callable[..., Ran], tmp_path: Path, backend: str
) -> None:
    files = {
        "dataflow.yml": _flow(backend, ", backpressure_timeout: 200ms"),
        "sender.py": SENDER,
        "receiver.py": STUCK_RECEIVER,
    }
    ran = dataflow(files)
    assert ran.returncode == 0, ran.output
    (got_line, counts) = ran.lines_of("receiver")
    got = int(got_line.split()[1])
    timeouts = int(counts.split()[-1])
    assert got_line.endswith("in order True")
    assert counts.startswith("dropped 0 ")
    assert timeouts >= 2
    assert got + timeouts == MESSAGES  # every message arrived, or was counted as timed out
    # the sender went on, and said once which input made it wait and what to do
    sender = ran.lines_of("sender")
    assert sender[-1] == "sender finished"
    (warning,) = [line for line in sender if line.startswith("WARN")]
    assert "for input 'n' of node 'receiver' after waiting 0.2 s" in warning
    assert "raise queue_size, or raise backpressure_timeout on that input" in warning
    # the run's record of the edge counts them apart from queue drops
    (run_id,) = run_ids(tmp_path)
    edges = {e["target"]: e for e in json.loads((tmp_path / "out" / run_id / "edges.json").read_text())}
    assert (edges["receiver/n"]["dropped"], edges["receiver/n"]["backpressure_timeouts"]) == (0, timeouts)


TIMEOUT = 0.3
PAUSED = f"""
    nodes:
      - id: source
        path: source.py
        inputs:
          tick: dora/timer/secs/60
        outputs: [out]
      - id: sink
        path: sink.py
        inputs:
          x:
            source: source/out
            queue_size: 3
            queue_policy: backpressure
            backpressure_timeout: {TIMEOUT}
"""
# Sends as fast as it may until Stop.
SOURCE = """
    from doradus import Node, Stop
    node = Node()
    n = 0
    while not isinstance(node.try_recv(), Stop):
        n += 1
        node.send_output("out", [n])
"""
SINK = """
    from doradus import Input, Node
    last = 0
    for event in Node():
        if isinstance(event, Input):
            n = event.value[0].as_py()
            if n != last + 1:
                print(f"sink gap {n} after {last}", flush=True)
            last = n
"""


def test_a_paused_receiver_loses_nothing_its_sender_waits_past_the_timeout(tmp_path: Path) -> None:
    write_files(tmp_path, {"dataflow.yml": PAUSED, "source.py": SOURCE, "sink.py": SINK})
    before = shm_entries()
    run_id = new_run_id()
    records: list[dict[str, Any]] = []
    daemon = LocalDaemon(
        load_dataflow(tmp_path / "dataflow.yml"),
        run_id=run_id,
        out_dir=tmp_path / "out" / run_id,
        on_record=records.append,
    )

    def sink() -> dict[str, Any]:
        return dict(daemon.node_metrics()["sink"].get("inputs", {}).get("x", {}))

    def sent() -> int:
        return int(daemon.node_metrics()["source"].get("outputs", {}).get("out", {}).get("sent", 0))

    daemon.start()
    try:
        assert eventually(lambda: sink().get("delivered", 0) > 50, 10 * REPORT)
        daemon.pause_node("sink")
        # the sink's queue fills to its queue_size, and nothing more is sent
        assert eventually(lambda: sink().get("queued") == 3, 5 * REPORT)

        def reported_blocked() -> bool:  # the source's report, up to REPORT old, caught up with it
            before = sent()
            time.sleep(1.5 * REPORT)
            return sent() == before

        assert eventually(reported_blocked, 10 * REPORT)
        held, waiting = sink()["delivered"], sent()
        time.sleep(3 * TIMEOUT + 2 * REPORT)  # several timeouts, two reports
        assert sent() == waiting
        assert (sink()["delivered"], sink()["queued"]) == (held, 3)
        assert (sink()["dropped"], sink()["backpressure_timeouts"]) == (0, 0)

        daemon.resume_node("sink")
        assert eventually(lambda: sink()["delivered"] > held + 50, 5 * REPORT)
        assert eventually(lambda: sent() > waiting + 50, 5 * REPORT)
        assert (sink()["dropped"], sink()["backpressure_timeouts"]) == (0, 0)
    finally:
        daemon.request_stop()
        if not daemon.wait(10.0):
            daemon.kill()
        daemon.close()
    assert_nothing_left(before, tmp_path)
    gaps = [r["message"] for r in records if r.get("node") == "sink" and "gap" in r["message"]]
    assert gaps == []
