"""Messages arrive: first and last sends, fan-out, big zero-copy payloads, drops."""

from __future__ import annotations

SENDER_FIRST_LAST = """
import pyarrow as pa
from doradus import Node
node = Node()
node.send_output("out", pa.array(["first"]))  # before any event
for i in range(3):
    node.send_output("out", pa.array([f"middle {i}"]))
node.send_output("out", pa.array(["last"]))  # right before exit
"""

PRINTER = """
from doradus import Input, InputClosed, Node, Stop
node = Node()
for event in node:
    if isinstance(event, Input):
        print("got", event.value[0].as_py())
    elif isinstance(event, InputClosed):
        print("closed", event.id)
    elif isinstance(event, Stop):
        print("stop", event.reason)
"""


def test_send_before_first_event_and_before_exit_arrive(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: sender
                path: sender.py
                outputs: [out]
              - id: receiver
                path: receiver.py
                inputs:
                  x: sender/out
            """,
            "sender.py": SENDER_FIRST_LAST,
            "receiver.py": PRINTER,
        }
    )
    assert ran.returncode == 0, ran.output
    assert ran.lines_of("receiver") == [
        "got first",
        "got middle 0",
        "got middle 1",
        "got middle 2",
        "got last",
        "closed x",
        "stop all-inputs-closed",
    ]


def test_fan_out_reaches_every_receiver(dataflow):
    receivers = "\n".join(
        f"""
              - id: r{i}
                path: receiver.py
                inputs:
                  x: sender/out
        """.rstrip()
        for i in range(4)
    )
    ran = dataflow(
        {
            "dataflow.yml": f"""
            nodes:
              - id: sender
                path: sender.py
                outputs: [out]
{receivers}
            """,
            "sender.py": SENDER_FIRST_LAST,
            "receiver.py": PRINTER,
        }
    )
    assert ran.returncode == 0, ran.output
    for i in range(4):
        assert ran.lines_of(f"r{i}")[:5] == [
            "got first",
            "got middle 0",
            "got middle 1",
            "got middle 2",
            "got last",
        ]


BIG_SENDER = """
import hashlib, numpy as np
from doradus import Node
node = Node()
rng = np.random.default_rng(1)
data = rng.integers(0, 255, size=40 * 2**20, dtype=np.uint8)
print("sha", hashlib.sha256(data.tobytes()).hexdigest())
node.send_output("big", data, {"kind": "copy"})
zero = node.allocate(40 * 2**20)
zero[:] = data[::-1]
print("sha-zero", hashlib.sha256(zero.tobytes()).hexdigest())
node.send_output("big", zero, {"kind": "zero-copy"})
"""

BIG_RECEIVER = """
import hashlib
import numpy as np
from doradus import Input, Node

def memfd_ranges():
    ranges = []
    for line in open("/proc/self/maps"):
        fields = line.split()
        if len(fields) >= 6 and fields[5].startswith("/memfd:doradus"):
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((lo, hi, fields[1]))
    return ranges

node = Node()
for event in node:
    if not isinstance(event, Input):
        continue
    value = event.value
    array = value.to_numpy(zero_copy_only=True)
    address = value.buffers()[1].address
    inside = [perm for lo, hi, perm in memfd_ranges() if lo <= address < hi]
    try:
        array[0] = 1
        writable = True
    except ValueError:
        writable = False
    digest = hashlib.sha256(array.tobytes()).hexdigest()
    print(event.metadata["kind"], len(value), digest, "shm" if inside else "not-shm",
          inside[0] if inside else "-", "writable" if writable else "read-only")
"""


def test_40_mib_arrives_intact_zero_copy_and_read_only(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: sender
                path: sender.py
                outputs: [big]
              - id: receiver
                path: receiver.py
                inputs:
                  big: sender/big
            """,
            "sender.py": BIG_SENDER,
            "receiver.py": BIG_RECEIVER,
        },
        timeout=120,
    )
    assert ran.returncode == 0, ran.output
    sent = dict(line.split() for line in ran.lines_of("sender"))
    got = [line.split() for line in ran.lines_of("receiver")]
    assert len(got) == 2, ran.output
    size = str(40 * 2**20)
    assert got[0] == ["copy", size, sent["sha"], "shm", "r--s", "read-only"]
    assert got[1] == ["zero-copy", size, sent["sha-zero"], "shm", "r--s", "read-only"]


def test_queue_overflow_drops_oldest_and_counts(dataflow):
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
                    queue_size: 5
            """,
            "sender.py": """
            from doradus import Node
            node = Node()
            for i in range(50):
                node.send_output("n", [i])
            """,
            "receiver.py": """
            import time
            from doradus import Input, Node
            node = Node()
            deadline = time.monotonic() + 30
            while node.statistics()["inputs"]["n"]["received"] < 50 and time.monotonic() < deadline:
                time.sleep(0.01)
            values = [e.value[0].as_py() for e in node if isinstance(e, Input)]
            print("values", values)
            print("dropped", node.statistics()["inputs"]["n"]["dropped"])
            """,
        }
    )
    assert ran.returncode == 0, ran.output
    printed = [line for line in ran.lines_of("receiver") if not line.startswith("WARN")]
    assert printed == ["values [45, 46, 47, 48, 49]", "dropped 45"]
    # the runtime says so too (see test_drops.py)
    assert "receiver | WARN  input receiver/n dropped 45 messages (queue_size 5, drop_oldest)" in ran.stdout


def test_relay_forwards_large_values_without_copying(dataflow):
    ran = dataflow(
        {
            "dataflow.yml": """
            nodes:
              - id: source
                path: source.py
                outputs: [frame]
                inputs:
                  done: sink/done
              - id: relay
                path: relay.py
                inputs:
                  frame: source/frame
                outputs: [frame]
              - id: sink
                path: sink.py
                inputs:
                  frame: relay/frame
                outputs: [done]
            """,
            "source.py": """
            import hashlib
            import numpy as np
            from doradus import Input, Node
            node = Node()
            digests = []
            for i in range(30):
                frame = np.full(2**20, i, np.uint8)
                digests.append(hashlib.sha256(frame.tobytes()).hexdigest()[:12])
                node.send_output("frame", frame, {"i": i})
                event = node.next()  # the sink's acknowledgement: one frame in flight at a time
                assert isinstance(event, Input), event
            print("sent", " ".join(digests))
            print("segments", node.statistics()["backend"].details["shared_memory"]["segments"])
            """,
            "relay.py": """
            from doradus import Input, Node
            node = Node()
            for event in node:
                if isinstance(event, Input):
                    node.send_output("frame", event.value, event.metadata)
            print("relay segments", node.statistics()["backend"].details["shared_memory"]["segments"])
            """,
            "sink.py": """
            import hashlib
            from doradus import Input, Node

            def backing(address):
                for line in open("/proc/self/maps"):
                    fields = line.split()
                    lo, hi = (int(x, 16) for x in fields[0].split("-"))
                    if lo <= address < hi and len(fields) >= 6:
                        return fields[5]
                return "?"

            node = Node()
            digests, owners = [], set()
            for event in node:
                if isinstance(event, Input):
                    value = event.value
                    owners.add(backing(value.buffers()[1].address).rsplit("-", 1)[0])
                    digests.append(hashlib.sha256(value.to_numpy(zero_copy_only=True).tobytes()).hexdigest()[:12])
                    node.send_output("done", [event.metadata["i"]])
            print("got", " ".join(digests))
            print("owners", sorted(owners))
            """,
        }
    )
    assert ran.returncode == 0, ran.output
    sent = ran.lines_of("source")[0].removeprefix("sent ")
    assert ran.lines_of("sink")[0] == f"got {sent}"
    # The sink reads the source's own segment: the relay passed it on without a copy,
    # so the relay never needed a segment of its own.
    assert ran.lines_of("sink")[1] == "owners ['/memfd:doradus-source']"
    assert ran.lines_of("relay") == ["relay segments 0"]
    # Releases travel back through the relay, so the source reuses its segments: each of
    # the three stages may still hold the previous frame while the next is in flight,
    # which bounds the pool at a handful of segments for 30 frames.
    segments = int(ran.lines_of("source")[1].split()[1])
    assert 1 <= segments <= 6
