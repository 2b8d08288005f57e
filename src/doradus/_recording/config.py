"""What the recorder and replayer nodes read: the JSON files `doradus._recording.plan` writes.

Each node gets the path of its file as its one argument (in its run's ``out/<run-id>/``).

Example:
    >>> topic: RecordedTopic = {"node": "camera", "output": "image", "format": None}
    >>> topic["node"]
    'camera'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

Compression = Literal["zstd", "lz4", "none"]
COMPRESSIONS: tuple[Compression, ...] = ("zstd", "lz4", "none")


class RecordedTopic(TypedDict):
    """One output the recorder subscribes to: its node, its output id, its format (None: Arrow).

    Example:
        >>> RecordedTopic(node="a", output="b", format={"name": "avro", "schema": "/s/r.avsc"})["output"]
        'b'
    """

    node: str
    output: str
    format: dict[str, Any] | None


class RecorderConfig(TypedDict):
    """The recorder node's settings: the file, its chunks, the dataflow to attach, the topics.

    ``topics`` maps each of the recorder's input ids to the output it records.

    Example:
        >>> config = RecorderConfig(output="/r/run.mcap", compression="zstd", chunk_size=1 << 20,
        ...     flush_interval=1.0, dataflow_path="/r/df.yml", dataflow_name="df", dataflow_text="",
        ...     run_id="r1", topics={})
        >>> config["compression"]
        'zstd'
    """

    output: str
    compression: Compression
    chunk_size: int
    flush_interval: float
    dataflow_path: str
    dataflow_name: str
    dataflow_text: str
    run_id: str
    topics: dict[str, RecordedTopic]


class ReplayerConfig(TypedDict):
    """A replayer node's settings: the recording, which topics it publishes on which output.

    ``topics`` maps recorded topics to this node's output ids; ``formats`` gives the format of
    each output that is not Arrow (`doradus.codecs.FormatSpec.to_json`'s form). ``start_ns`` is
    the publish time every replayer counts from (the earliest of the replayed messages), so
    several replayers keep their relative timing. ``speed`` 0 sends as fast as possible.

    Example:
        >>> ReplayerConfig(recording="/r/run.mcap", speed=1.0, loop=False, start_ns=0,
        ...                topics={"camera/image": "image"}, formats={})["speed"]
        1.0
    """

    recording: str
    speed: float
    loop: bool
    start_ns: int
    topics: dict[str, str]
    formats: dict[str, dict[str, Any]]


def write_config(path: Path, config: RecorderConfig | ReplayerConfig) -> Path:
    """Write a node's configuration as JSON; returns ``path``.

    Example:
        >>> import tempfile
        >>> where = Path(tempfile.mkdtemp()) / "c.json"
        >>> write_config(where, ReplayerConfig(recording="x", speed=0.0, loop=False, start_ns=0,
        ...                                     topics={}, formats={})).name
        'c.json'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def read_recorder_config(path: str) -> RecorderConfig:
    """The recorder's configuration from its file.

    Example::

        config = read_recorder_config(sys.argv[1])
    """
    return cast("RecorderConfig", json.loads(Path(path).read_text(encoding="utf-8")))


def read_replayer_config(path: str) -> ReplayerConfig:
    """A replayer's configuration from its file.

    Example::

        config = read_replayer_config(sys.argv[1])
    """
    return cast("ReplayerConfig", json.loads(Path(path).read_text(encoding="utf-8")))
