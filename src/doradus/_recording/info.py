"""`recording_info`: what a recording holds, as `doradus recording info` shows it.

Counts, times and chunk sizes come from the file's summary (nothing else is read); a file
without one (cut by a crash) is scanned up to its last complete chunk. Rates are messages per
second over the whole recording, as ``mcap info`` computes them.

Example::

    info = recording_info(Path("run.mcap"))
    info.topics[0].topic, info.topics[0].messages, info.topics[0].rate   # ('camera/image', 300, 30.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from doradus._recording.reader import Recording


@dataclass(frozen=True)
class TopicInfo:
    """One recorded topic: its format, schema, messages, rate, and what its recorder dropped.

    ``metadata_messages`` counts its companion channel's messages (those with metadata keys).

    Example:
        >>> TopicInfo("cam/image", "arrow", "arrow.ipc.stream", "uint8", 30, 10.0, 0, 0).rate
        10.0
    """

    topic: str
    format: str
    message_encoding: str
    schema: str
    messages: int
    rate: float | None
    metadata_messages: int
    dropped: int


@dataclass(frozen=True)
class RecordingInfo:
    """A recording at a glance.

    ``messages`` counts every MCAP message, metadata channels included (what ``mcap info``
    counts); each topic's own count is in ``topics``. ``complete`` is False for a file that
    was not finished, and ``damage`` says where reading it stopped.

    Example:
        >>> info = RecordingInfo("r.mcap", 10, True, "", "demo", "r1", 0, 0.0, 0, 0, 0, (), 0, 0, ())
        >>> info.ratio is None
        True
    """

    path: str
    size: int
    complete: bool
    damage: str
    dataflow: str
    run_id: str
    messages: int
    duration: float
    start: int
    end: int
    chunks: int
    compression: tuple[str, ...]
    compressed_bytes: int
    uncompressed_bytes: int
    topics: tuple[TopicInfo, ...]

    @property
    def ratio(self) -> float | None:
        """Uncompressed bytes per compressed byte of the chunks (None without chunks).

        Example:
            >>> RecordingInfo("r", 1, True, "", "", "", 1, 0.0, 0, 0, 1, ("zstd",), 50, 100, ()).ratio
            2.0
        """
        return self.uncompressed_bytes / self.compressed_bytes if self.compressed_bytes else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (what ``--output json`` prints).

        Example:
            >>> info = RecordingInfo("r", 1, True, "", "", "", 0, 0.0, 0, 0, 0, (), 0, 0, ())
            >>> info.to_json()["ratio"] is None
            True
        """
        return {**asdict(self), "compression": list(self.compression), "ratio": self.ratio}


def recording_info(path: Path) -> RecordingInfo:
    """Summarise the recording at ``path``.

    Raises:
        RecordingError: the file cannot be read or is not MCAP.

    Example::

        print(recording_info(Path("run.mcap")).messages)
    """
    with Recording.open(path) as recording:
        return _info(recording)


def _info(recording: Recording) -> RecordingInfo:
    contents = recording.contents
    duration = (contents.end - contents.start) / 1e9 if contents.messages else 0.0
    counts: dict[str, int] = {}
    meta_counts: dict[str, int] = {}
    first: dict[str, Any] = {}
    for channel in contents.channels.values():
        topic = f"{channel.metadata.get('node')}/{channel.metadata.get('output')}"
        if channel.role == "metadata":
            meta_counts[topic] = meta_counts.get(topic, 0) + channel.messages
        else:
            counts[channel.topic] = counts.get(channel.topic, 0) + channel.messages
            first.setdefault(channel.topic, channel)
    dropped = recording.dropped()
    topics = tuple(
        TopicInfo(
            topic=topic,
            format=first[topic].metadata.get("format", ""),
            message_encoding=first[topic].message_encoding,
            schema=first[topic].schema_name,
            messages=counts[topic],
            rate=counts[topic] / duration if duration > 0 else None,
            metadata_messages=meta_counts.get(topic, 0),
            dropped=dropped.get(topic, 0),
        )
        for topic in sorted(counts)
    )
    run = recording.run_record()
    return RecordingInfo(
        path=str(recording.path),
        size=recording.path.stat().st_size,
        complete=recording.complete,
        damage=recording.damage,
        dataflow=run.get("name", ""),
        run_id=run.get("run_id", ""),
        messages=contents.messages,
        duration=duration,
        start=contents.start,
        end=contents.end,
        chunks=contents.chunks,
        compression=tuple(sorted(contents.compressions)),
        compressed_bytes=contents.compressed_bytes,
        uncompressed_bytes=contents.uncompressed_bytes,
        topics=topics,
    )
