"""`shared_memory_pool_size`: a receiver that keeps every value bounds its sender's memory, drops counted."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Ran

KEEPER = {
    "dataflow.yml": """
    nodes:
      - id: sender
        path: sender.py
        outputs: [frame]
        shared_memory_pool_size: 8MiB
      - id: keeper
        path: keeper.py
        inputs:
          frame:
            source: sender/frame
            queue_size: 100
    """,
    # 40 messages of 1 MiB, each in a 1 MiB segment; the keeper never lets one go, so 8 fit.
    "sender.py": """
    import numpy as np
    from doradus import Node
    node = Node()
    for i in range(40):
        node.send_output("frame", np.full(1 << 17, i, dtype=np.int64))
    with open("/proc/self/maps") as maps:
        segments = {line.split()[-1] for line in maps if "memfd:doradus-sender" in line}
    print("segments", len(segments))
    """,
    "keeper.py": """
    from doradus import Input, Node
    node = Node()
    kept = [e.value for e in node if isinstance(e, Input)]
    stats = node.statistics()["inputs"]["frame"]
    print("kept", [v[0].as_py() for v in kept], "dropped", stats["dropped"])
    """,
}


def test_a_receiver_keeping_every_value_misses_messages_past_the_senders_pool_size(
    dataflow: Callable[..., Ran],
) -> None:
    ran = dataflow(KEEPER)
    assert ran.returncode == 0, ran.output
    warning = (
        "input keeper/frame dropped 32 messages (32 by sender: keeper held more of its shared memory "
        "than its shared_memory_pool_size)"
    )
    assert ran.lines_of("keeper") == [f"kept {list(range(8))} dropped 32", f"WARN  {warning}"]
    (line,) = ran.lines_of("sender")
    assert int(line.split()[1]) <= 9, line  # without the limit: one segment per message, 40
    assert warning in ran.stderr.splitlines(), ran.stderr
