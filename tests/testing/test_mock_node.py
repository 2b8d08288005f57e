"""`doradus.testing.MockNode`: a node's logic, unit-tested in-process, as the real node runs it."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from doradus import EncodeError, Error, Input, InputClosed, MetadataError, Stop, UnknownOutputError
from doradus.testing import MockNode

# The logic under test: a node that doubles numbers and counts ticks. The same module runs as a
# real node in the dataflow test below (`if __name__ == "__main__"`).
DOUBLER = """
from doradus import Input, InputClosed, Node


def run(node):
    ticks = 0
    for event in node:
        if isinstance(event, Input) and event.id == "numbers":
            doubled = [2 * v for v in event.value.to_pylist()]
            node.send_output("doubled", doubled, {"seq": event.metadata.get("seq", -1)})
        elif isinstance(event, Input) and event.id == "tick":
            ticks += 1
        elif isinstance(event, InputClosed) and event.id == "numbers":
            node.send_output("summary", [ticks])


if __name__ == "__main__":
    run(Node())
"""


def _doubler():
    namespace: dict[str, object] = {"__name__": "doubler"}
    exec(DOUBLER, namespace)
    return namespace["run"]


def test_events_arrive_as_the_runtime_delivers_them() -> None:
    node = MockNode([("numbers", [1, 2], {"seq": 7}), ("tick", [])])
    events = list(node)
    assert [type(e) for e in events] == [Input, Input, InputClosed, InputClosed, Stop]
    first = events[0]
    assert isinstance(first, Input)
    assert first.value.type == pa.int64()
    assert first.metadata["seq"] == 7
    assert first.metadata["timestamp"].tzinfo is UTC
    assert [e.id for e in events[2:4]] == ["numbers", "tick"]
    assert events[-1] == Stop("all-inputs-closed")
    assert node.next() is None


def test_a_stop_among_the_inputs_ends_the_stream_there() -> None:
    node = MockNode([("a", [1]), Stop("manual"), ("a", [2])])
    assert [type(e) for e in node] == [Input, Stop]
    assert node.is_empty()


def test_given_events_pass_as_they_are() -> None:
    node = MockNode([Error("lost daemon"), InputClosed("a")], close_inputs=False)
    assert node.drain() == [Error("lost daemon"), InputClosed("a")]


def test_a_nodes_logic_runs_on_the_mock() -> None:
    node = MockNode(
        [("numbers", [1, 2, 3], {"seq": 1}), ("tick", []), ("tick", []), ("numbers", np.array([5]))],
        outputs=["doubled", "summary"],
    )
    _doubler()(node)
    assert [v.to_pylist() for v in node.outputs["doubled"]] == [[2, 4, 6], [10]]
    assert [m.metadata["seq"] for m in node.sent if m.output == "doubled"] == [1, -1]
    assert node.outputs["summary"][0].to_pylist() == [2]
    assert all(isinstance(m.metadata["timestamp"], datetime) for m in node.sent)


def test_sends_are_checked_as_the_real_node_checks_them() -> None:
    node = MockNode(outputs=["out"])
    with pytest.raises(UnknownOutputError, match="nope"):
        node.send_output("nope", [1])
    with pytest.raises(MetadataError, match="allowed"):
        node.send_output("out", [1], {"bad": {"nested": 1}})
    with pytest.raises(MetadataError, match="reserved for the send time"):
        node.send_output("out", [1], {"timestamp": "yesterday"})
    with pytest.raises(EncodeError, match="cannot send a value of type object"):
        node.send_output("out", object())
    with pytest.raises(MetadataError, match="exceeds"):
        node.send_output("out", [1], {"big": "x" * 40_000})
    node.send_output("out", [1], {"timestamp": datetime(2000, 1, 1, tzinfo=UTC)})
    assert node.sent[0].metadata["timestamp"].year > 2000
    assert len(node.sent) == 1


def test_zero_copy_sends_arrive_as_bytes() -> None:
    node = MockNode(outputs=["blob", "frame"])
    with node.send_output_raw("blob", 3, {"k": "v"}) as buf:
        buf[:] = b"abc"
    frame = node.allocate(4)
    frame[:] = 9
    node.send_output("frame", frame)
    assert node.outputs["blob"][0].to_pylist() == [97, 98, 99]
    assert node.sent[0].metadata["k"] == "v"
    assert node.outputs["frame"][0].to_pylist() == [9, 9, 9, 9]


def test_sending_from_threads_keeps_each_threads_order() -> None:
    node = MockNode(outputs=["data"])

    def worker(t: int) -> None:
        for i in range(200):
            node.send_output("data", [t * 1000 + i], {"thread": t})

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    per_thread: dict[int, list[int]] = {}
    for message in node.sent:
        per_thread.setdefault(message.metadata["thread"], []).append(message.value[0].as_py())
    assert sorted(per_thread) == [0, 1, 2, 3]
    assert all(v == sorted(v) and len(v) == 200 for v in per_thread.values())


def test_the_mock_starts_nothing() -> None:
    import psutil

    before = threading.active_count(), len(psutil.Process(os.getpid()).children())
    node = MockNode([("numbers", [1])], outputs=["doubled", "summary"])
    _doubler()(node)
    node.close()
    assert (threading.active_count(), len(psutil.Process(os.getpid()).children())) == before


def test_the_same_logic_gives_the_same_outputs_in_a_real_dataflow(dataflow) -> None:
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: source
                path: source.py
                outputs: [numbers]
              - id: doubler
                path: doubler.py
                inputs:
                  numbers: source/numbers
                outputs: [doubled, summary]
              - id: sink
                path: sink.py
                inputs:
                  doubled: doubler/doubled
                  summary: doubler/summary
            """,
            "source.py": """
            from doradus import Node
            node = Node()
            node.send_output("numbers", [1, 2, 3], {"seq": 1})
            node.send_output("numbers", [5], {"seq": 2})
            """,
            "doubler.py": DOUBLER,
            "sink.py": """
            import json
            from doradus import Input, Node
            for event in Node():
                if isinstance(event, Input):
                    print(json.dumps([event.id, event.value.to_pylist(), event.metadata.get("seq")]))
            """,
        }
    )
    assert ran.returncode == 0, ran.output
    real = [json.loads(line) for line in ran.lines_of("sink")]
    node = MockNode(
        [("numbers", [1, 2, 3], {"seq": 1}), ("numbers", [5], {"seq": 2})], outputs=["doubled", "summary"]
    )
    _doubler()(node)
    mocked = [[m.output, m.value.to_pylist(), m.metadata.get("seq")] for m in node.sent]
    assert real == mocked
