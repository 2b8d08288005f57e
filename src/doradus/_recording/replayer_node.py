"""A replayer: the node `doradus replay` runs in place of a replaced node.

Run as ``python -m doradus._recording.replayer_node CONFIG.json`` (a `ReplayerConfig`). It
publishes the recorded messages of its topics on the outputs of the node it stands for, in
recorded order, with their recorded metadata (the send ``timestamp`` is the runtime's, as for
any message). With ``speed`` above 0 each message goes when its recorded publish time, counted
from the configuration's ``start_ns`` and divided by ``speed``, has come; with 0, at once.
``loop`` starts again after the last message, one mean interval later. It ends after the last
message (or never, with ``loop``), or at Stop or SIGTERM.

Example::

    $ python -m doradus._recording.replayer_node out/<run-id>/replayer-camera.json   # by `replay`
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from doradus._node.events import Stop
from doradus._node.node import Node
from doradus._recording.config import ReplayerConfig, read_replayer_config
from doradus._recording.reader import RecordedMessage, Recording


class _Ended:
    """Whether Stop or SIGTERM came (the handler sets it; the loop reads it)."""

    came = False


def main(argv: list[str]) -> int:
    """Replay until the recording ends (or forever with ``loop``), Stop or SIGTERM.

    Example::

        sys.exit(main(sys.argv))
    """
    config = read_replayer_config(argv[1])
    codecs = _codecs(config)
    signal.signal(signal.SIGTERM, _terminate)
    node = Node()
    sent = 0
    with Recording.open(Path(config["recording"])) as recording:
        offset = 0
        started = time.monotonic()
        while not _Ended.came:
            count, span = _replay(node, recording, config, codecs, started, offset)
            sent += count
            if not config["loop"] or not count:
                break
            offset += span + (span // (count - 1) if count > 1 else 1_000_000_000)
    print(f"replayed {sent} messages", flush=True)
    return 0


def _replay(
    node: Node,
    recording: Recording,
    config: ReplayerConfig,
    codecs: dict[str, Any],
    started: float,
    offset: int,
) -> tuple[int, int]:
    """One pass over the recording: (messages sent, ns from ``start_ns`` to the last one)."""
    speed, start = config["speed"], config["start_ns"]
    outputs = config["topics"]
    sent, span = 0, 0
    for message in recording.messages(set(outputs)):
        span = max(span, message.publish_time - start)
        due = started + (message.publish_time - start + offset) / 1e9 / speed if speed else 0.0
        if not _wait_until(node, due):
            break
        output = outputs[message.topic]
        node.send_output(output, _value(message, codecs.get(output)), message.metadata)
        sent += 1
    return sent, span


def _wait_until(node: Node, due: float) -> bool:
    """Wait for ``due`` (monotonic) while taking the node's events; False once Stop came."""
    while not _Ended.came:
        left = due - time.monotonic()
        event = node.next(timeout=max(left, 0.0)) if left > 0 else node.try_recv()
        if isinstance(event, Stop):
            _Ended.came = True
        elif event is None and left <= 0:
            return True
    return False


def _value(message: RecordedMessage, codec: Any) -> Any:
    if codec is None:
        return message.arrow()
    return codec.decode(message.data)


def _codecs(config: ReplayerConfig) -> dict[str, Any]:
    if not config["formats"]:
        return {}
    from doradus.codecs import FormatSpec, get_codec

    return {output: get_codec(FormatSpec.from_json(f)) for output, f in config["formats"].items()}


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    _Ended.came = True


if __name__ == "__main__":
    sys.exit(main(sys.argv))
