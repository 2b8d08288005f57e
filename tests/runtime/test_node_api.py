"""The node API surface, exercised inside real node processes."""

from __future__ import annotations

import json

SENDER = """
import threading
import numpy as np
import pyarrow as pa
from doradus import MetadataError, Node, UnknownOutputError

node = Node()
print("config", sorted(node.node_config()["outputs"]), node.dataflow_descriptor()["nodes"][0]["id"])
try:
    node.send_output("nope", [1])
except UnknownOutputError as exc:
    print("unknown output:", "nope" in str(exc) and "outputs:" in str(exc))
try:
    node.send_output("data", [1], {"bad": {"nested": 1}})
except MetadataError as exc:
    print("bad metadata:", "allowed" in str(exc))

# several threads send at once: every message arrives, each thread's order is kept
def worker(t):
    for i in range(200):
        node.send_output("data", pa.array([t * 1000 + i], pa.int64()), {"thread": t})
threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
for t in threads: t.start()
for t in threads: t.join()

node.send_output("kinds", np.arange(6, dtype=np.float32).reshape(2, 3), {"what": "numpy"})
node.send_output("kinds", b"\\x01\\x02", {"what": "bytes"})
node.send_output("kinds", [1.5, 2.5], {"what": "list"})
node.send_output("kinds", pa.record_batch({"a": [1, 2], "b": ["x", "y"]}), {"what": "batch"})
with node.send_output_raw("kinds", 100_000, {"what": "raw"}) as buf:
    buf[:] = b"\\x07" * 100_000
meta = {"what": "meta", "f": 0.5, "ints": [1, 2], "strs": ["a"], "flag": True}
node.send_output("kinds", pa.array([1, 2, 3]), meta)
"""

RECEIVER = """
import asyncio, json
import pyarrow as pa
from doradus import Input, InputClosed, Node, Stop

node = Node()
per_thread = {}
kinds = {}

async def consume():
    async for event in node:
        if isinstance(event, Input) and event.id == "data":
            per_thread.setdefault(event.metadata["thread"], []).append(event.value[0].as_py())
        elif isinstance(event, Input):
            meta = dict(event.metadata)
            meta.pop("timestamp")
            value = event.value
            kinds[meta.pop("what")] = [str(value.type), len(value), value.to_pylist()[:3], meta]
        elif isinstance(event, Stop):
            return event.reason

reason = asyncio.run(consume())
ordered = all(v == sorted(v) and len(v) == 200 for v in per_thread.values())
print(json.dumps({"threads": sorted(per_thread), "ordered": ordered, "kinds": kinds, "reason": reason}))
print("after stop:", node.next(), node.try_recv(), node.drain(), node.is_empty())
"""


def test_node_api_in_real_processes(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: sender
                path: sender.py
                outputs: [data, kinds]
              - id: receiver
                path: receiver.py
                inputs:
                  data:
                    source: sender/data
                    queue_size: 1000
                  kinds: sender/kinds
            """,
            "sender.py": SENDER,
            "receiver.py": RECEIVER,
        }
    )
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("sender") == [
        "config ['data', 'kinds'] sender",
        "unknown output: True",
        "bad metadata: True",
    ]
    report_line, after = ran.lines_of("receiver")
    report = json.loads(report_line)
    assert report["threads"] == [0, 1, 2, 3]
    assert report["ordered"] is True
    assert report["reason"] == "all-inputs-closed"
    kinds = report["kinds"]
    assert kinds["numpy"] == ["float", 6, [0.0, 1.0, 2.0], {}]
    assert kinds["bytes"] == ["uint8", 2, [1, 2], {}]
    assert kinds["list"] == ["double", 2, [1.5, 2.5], {}]
    assert kinds["batch"] == ["struct<a: int64, b: string>", 2, [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], {}]
    assert kinds["raw"] == ["uint8", 100_000, [7, 7, 7], {}]
    assert kinds["meta"] == ["int64", 3, [1, 2, 3], {"f": 0.5, "ints": [1, 2], "strs": ["a"], "flag": True}]
    assert after == "after stop: None None [] True"


def test_try_recv_and_drain_return_what_is_queued(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: sender
                path: sender.py
                outputs: [n]
              - id: receiver
                path: receiver.py
                inputs:
                  n:
                    source: sender/n
                    queue_size: 100
            """,
            "sender.py": """
            from doradus import Node
            node = Node()
            for i in range(10):
                node.send_output("n", [i])
            """,
            "receiver.py": """
            import time
            from doradus import Input, Node
            node = Node()
            deadline = time.monotonic() + 30
            while node.statistics()["inputs"]["n"]["received"] < 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            first = node.try_recv()
            rest = node.drain()
            print("first", first.value[0].as_py())
            print("rest", [e.value[0].as_py() for e in rest if isinstance(e, Input)])
            """,
        }
    )
    assert ran.returncode == 0, ran.output
    lines = ran.lines_of("receiver")
    assert lines == ["first 0", "rest [1, 2, 3, 4, 5, 6, 7, 8, 9]"]


SHAPES = """
import json, typing
from doradus import Node
from doradus._wire import control, node_config

def misfit(value, shape):
    # (keys the shape does not know, required keys missing)
    hints = typing.get_type_hints(shape, include_extras=True)
    optional = {k for k, hint in hints.items() if typing.get_origin(hint) is typing.NotRequired}
    return [sorted(set(value) - set(hints)), sorted(set(hints) - optional - set(value))]

node = Node()
config = node._config
print(json.dumps({
    "config": misfit(config, node_config.NodeConfig),
    "inputs": {k: [v["kind"], misfit(v, node_config.InputConfig)] for k, v in config["inputs"].items()},
    "links": sorted([link["dir"], misfit(link, node_config.LinkConfig)] for link in config["links"]),
    "stats": misfit(node._counters.report(node._inbox), control.StatsMessage),
}))
node.close()
"""


def test_the_configuration_a_node_gets_and_the_stats_it_sends_have_their_typed_shapes(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: sender
                path: sender.py
                outputs: [n]
              - id: shapes
                path: shapes.py
                inputs:
                  n: sender/n
                  tick: dora/timer/millis/50
                  warnings: dora/logs/warn
                outputs: [out]
              - id: receiver
                path: receiver.py
                inputs:
                  out: shapes/out
            """,
            "sender.py": """
            from doradus import Node
            Node()
            """,
            "shapes.py": SHAPES,
            "receiver.py": """
            from doradus import Node
            for _event in Node():
                pass
            """,
        }
    )
    assert ran.returncode == 0, ran.output
    (line,) = ran.lines_of("shapes")
    fits = [[], []]
    assert json.loads(line) == {
        "config": fits,
        "inputs": {"n": ["node", fits], "tick": ["timer", fits], "warnings": ["logs", fits]},
        "links": [["in", fits], ["out", fits]],
        "stats": fits,
    }
