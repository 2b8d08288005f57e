"""The recorder: the node `doradus record` adds to a dataflow, writing what it receives to MCAP.

Run as ``python -m doradus._recording.recorder_node CONFIG.json`` (a `RecorderConfig`). Each
of its inputs subscribes to one recorded output, with a large queue (``queue_size``): when
the recorder cannot keep up for long enough to fill it, the oldest messages are dropped,
counted in the run's summary and in the file's `END_RECORD` metadata. It records until Stop,
until every recorded output has ended, or until SIGTERM, then finishes the file.

Messages of other formats are stored re-encoded with their input's codec: the same value,
not always the same bytes.

Example::

    $ python -m doradus._recording.recorder_node out/<run-id>/recorder.json   # started by `record`
"""

from __future__ import annotations

import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from doradus._node.events import Error, Input, Stop
from doradus._node.node import Node
from doradus._recording.config import RecordedTopic, RecorderConfig, read_recorder_config
from doradus._recording.writer import RecordingWriter
from doradus._wire.format_spec import FormatSpec

POLL = 0.25
"""Seconds between looks at whether SIGTERM came, when no message arrives."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class _Terminated:
    """Whether SIGTERM came (set by its handler, read by the loop: nothing is cut mid-write)."""

    came = False


def main(argv: list[str]) -> int:
    """Record until the stream ends, Stop or SIGTERM; returns the exit status.

    Example::

        sys.exit(main(sys.argv))
    """
    config = read_recorder_config(argv[1])
    writer = RecordingWriter(
        Path(config["output"]),
        compression=config["compression"],
        chunk_size=config["chunk_size"],
        flush_interval=config["flush_interval"],
    )
    writer.attach_dataflow(
        Path(config["dataflow_path"]),
        config["dataflow_text"],
        name=config["dataflow_name"],
        run_id=config["run_id"],
    )
    signal.signal(signal.SIGTERM, _terminate)
    node: Node | None = None
    try:
        node = Node()
        _record(node, writer, config)
        if _Terminated.came:
            print("SIGTERM: finishing the recording", flush=True)
    finally:
        dropped = _dropped(node, config) if node is not None else {}
        writer.finish(dropped)
        _summary(writer, dropped)
    return 0


def _record(node: Node, writer: RecordingWriter, config: RecorderConfig) -> None:
    topics = config["topics"]
    specs = {k: FormatSpec.from_json(t["format"]) for k, t in topics.items() if t["format"]}
    while not _Terminated.came:
        due = writer.flush_due()
        event = node.next(timeout=POLL if due is None else min(due, POLL))
        if isinstance(event, Input):
            _write(writer, event, topics[event.id], specs.get(event.id))
        elif isinstance(event, Stop):
            return
        elif isinstance(event, Error):
            print(f"WARN: {event.message}", flush=True)
        writer.flush_if_due()


def _write(writer: RecordingWriter, event: Input, topic: RecordedTopic, spec: FormatSpec | None) -> None:
    received = time.time_ns()
    stamp = event.metadata.get("timestamp")
    sent = (stamp - _EPOCH) // _MICROSECOND * 1000 if isinstance(stamp, datetime) else received
    node, output = topic["node"], topic["output"]
    if spec is None or event.codec is None:
        writer.add_arrow(node, output, event.value, event.metadata, received, sent)
    else:
        encoded = event.codec.encode(event.value)
        writer.add_encoded(node, output, spec, memoryview(encoded), event.metadata, received, sent)


def _dropped(node: Node, config: RecorderConfig) -> dict[str, int]:
    """Messages each topic's queue dropped, from the node's own counters."""
    inputs = node.statistics()["inputs"]
    found = {}
    for input_id, topic in config["topics"].items():
        found[f"{topic['node']}/{topic['output']}"] = int(inputs.get(input_id, {}).get("dropped", 0))
    return found


def _summary(writer: RecordingWriter, dropped: dict[str, int]) -> None:
    total = sum(writer.counts.values())
    size = writer.path.stat().st_size if writer.path.exists() else 0
    lost = sum(dropped.values())
    more = f"; {lost} dropped by a full queue" if lost else ""
    print(
        f"recorded {total} messages on {len(writer.counts)} topics to {writer.path} "
        f"({size / 1_048_576:.1f} MiB){more}",
        flush=True,
    )


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    _Terminated.came = True


if __name__ == "__main__":
    sys.exit(main(sys.argv))
