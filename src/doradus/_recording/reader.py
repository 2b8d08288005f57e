"""`Recording`: a recording read back, through its summary or, for a cut file, by a scan.

A finished file has a summary (channels, statistics, chunk and attachment indexes) that
`Recording` reads without touching the messages. A file whose writer was killed has none: it
is read from the start up to its last complete chunk (`Recording.damage` says what stopped
the scan). Messages come in file order (the order the recorder received them), each with
its metadata joined back from the companion channel.

Memory stays bounded by one chunk while reading messages.

Example::

    with Recording.open(Path("run.mcap")) as recording:
        for message in recording.messages({"camera/image"}):
            print(message.publish_time, message.arrow().to_pylist())
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa

from doradus._exceptions import DoradusError
from doradus._recording.arrow_ipc import read_value
from doradus._recording.channels import ARROW, END_RECORD, ROLE_METADATA, RUN_RECORD
from doradus._recording.errors import RecordingError, require_mcap
from doradus._recording.metadata_json import from_json

if TYPE_CHECKING:
    from doradus.codecs import Codec


@dataclass(frozen=True)
class RecordedMessage:
    """One recorded message: where it came from, when, its bytes and its metadata.

    ``metadata`` holds the sender's keys (``timestamp`` is ``publish_time``, in ns since the
    Unix epoch); ``log_time`` is when the recorder received it.

    Example:
        >>> from doradus._recording.arrow_ipc import ipc_stream, to_batch
        >>> m = RecordedMessage("a/o", "a", "o", "arrow", 2, 1, 1, ipc_stream(to_batch(pa.array([5]))))
        >>> m.arrow().to_pylist()
        [5]
    """

    topic: str
    node: str
    output: str
    format: str
    log_time: int
    publish_time: int
    sequence: int
    data: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    format_spec: dict[str, Any] | None = None
    """The format and schema of a message that is not Arrow (`FormatSpec.to_json`'s form)."""
    channel_id: int = 0

    def arrow(self) -> pa.Array:
        """The Arrow array the node sent (Arrow messages only).

        Raises:
            RecordingError: the message is of another format, or damaged.

        Example::

            message.arrow().to_pylist()   # [1, 2, 3]
        """
        if self.format != ARROW:
            raise RecordingError(f"a message of {self.topic} is {self.format}, not Arrow")
        return read_value(self.data)


@dataclass
class ChannelSummary:
    """One channel of a recording: its topic, encodings, schema name and message count.

    Example:
        >>> ChannelSummary(1, "a/o", "arrow.ipc.stream", "int64", {"role": "data"}, 3).role
        'data'
    """

    id: int
    topic: str
    message_encoding: str
    schema_name: str
    metadata: dict[str, str]
    messages: int = 0
    schema_encoding: str = ""
    schema_data: bytes = b""

    @property
    def role(self) -> str:
        """``data`` for a recorded output, ``metadata`` for its companion channel.

        Example:
            >>> ChannelSummary(2, "a/o#metadata", "json", "m", {"role": "metadata"}).role
            'metadata'
        """
        return self.metadata.get("role", "data")


@dataclass
class Contents:
    """What a recording holds, from its summary or from a scan of a cut file.

    Example:
        >>> Contents().messages
        0
    """

    channels: dict[int, ChannelSummary] = field(default_factory=dict)
    messages: int = 0
    start: int = 0
    end: int = 0
    chunks: int = 0
    compressions: set[str] = field(default_factory=set)
    compressed_bytes: int = 0
    uncompressed_bytes: int = 0
    attachments: dict[str, bytes] = field(default_factory=dict)
    records: dict[str, dict[str, str]] = field(default_factory=dict)
    """Metadata records by name (`RUN_RECORD`, `END_RECORD`)."""


class Recording:
    """An open recording; a context manager that closes its file.

    Attributes:
        path: the file.
        complete: True when the file was finished (summary and footer written).
        damage: for a cut file, what stopped the scan ("" otherwise).
        contents: its channels, counts, times, chunks, attachments and metadata records.

    Example::

        with Recording.open(Path("run.mcap")) as recording:
            print(recording.complete, recording.topics())
    """

    def __init__(self, path: Path, stream: IO[bytes]) -> None:
        self.path = path
        self._stream = stream
        self.complete = False
        self.damage = ""
        self.contents = Contents()
        self._codecs: dict[int, Codec] = {}
        self._schema_folder: Path | None = None
        summary = _summary(stream)
        if summary is not None:
            self.complete = True
            self.contents = _from_summary(stream, summary)
        else:
            self.contents, self.damage = _scan(path)

    @classmethod
    def open(cls, path: Path) -> Recording:
        """Open ``path``.

        Raises:
            RecordingError: the file is missing or not an MCAP file, or ``mcap`` is missing.

        Example::

            with Recording.open(Path("run.mcap")) as recording: ...
        """
        require_mcap()
        try:
            stream = path.open("rb")
        except OSError as exc:
            raise RecordingError(
                f"cannot read {path} ({exc})", fix="give a file `doradus record` wrote"
            ) from exc
        if stream.read(8) != b"\x89MCAP0\r\n":
            stream.close()
            raise RecordingError(f"{path} is not an MCAP file", fix="give a file `doradus record` wrote")
        stream.seek(0)
        return cls(path, stream)

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (and remove the schema files `codec` wrote).

        Example::

            recording.close()
        """
        self._stream.close()
        if self._schema_folder is not None:
            shutil.rmtree(self._schema_folder, ignore_errors=True)

    def codec(self, channel_id: int) -> Codec:
        """The codec reading the messages of a channel that is not Arrow.

        It reads the schema file the dataflow named when it still exists, else the copy the
        recording holds (a schema importing other files needs them where they were).

        Raises:
            RecordingError: the channel is Arrow, or its codec cannot be made.

        Example::

            value = recording.codec(message.channel_id).decode(message.data)
        """
        found = self._codecs.get(channel_id)
        if found is not None:
            return found
        from doradus.codecs import FormatSpec, get_codec

        channel = self.contents.channels[channel_id]
        raw = channel.metadata.get("format_spec")
        if not raw:
            raise RecordingError(f"{channel.topic} is Arrow: read it with `RecordedMessage.arrow`")
        spec = FormatSpec.from_json(json.loads(raw))
        if spec.schema is not None and not spec.schema.is_file() and channel.schema_data:
            if self._schema_folder is None:
                self._schema_folder = Path(tempfile.mkdtemp(prefix="doradus-schemas-"))
            copy = self._schema_folder / str(channel_id) / spec.schema.name
            copy.parent.mkdir()
            copy.write_bytes(channel.schema_data)
            spec = dataclasses.replace(spec, schema=copy)
        try:
            codec = self._codecs[channel_id] = get_codec(spec)
        except (KeyError, ImportError, DoradusError) as exc:
            raise RecordingError(f"cannot read {channel.topic} as {spec} ({exc})") from exc
        return codec

    # -------------------------------------------------------------- contents
    def data_channels(self) -> list[ChannelSummary]:
        """The channels of recorded outputs (not their metadata companions), by topic.

        Example::

            [c.topic for c in recording.data_channels()]   # ['camera/image', ...]
        """
        found = [c for c in self.contents.channels.values() if c.role != ROLE_METADATA]
        return sorted(found, key=lambda c: (c.topic, c.id))

    def topics(self) -> list[str]:
        """The recorded topics, sorted.

        Example::

            recording.topics()   # ['camera/image', 'detector/boxes']
        """
        return sorted({c.topic for c in self.data_channels()})

    def run_record(self) -> dict[str, str]:
        """The `RUN_RECORD` metadata: the dataflow's ``path`` and ``name``, the ``run_id``.

        Example::

            recording.run_record()["run_id"]
        """
        return self.contents.records.get(RUN_RECORD, {})

    def dropped(self) -> dict[str, int]:
        """Messages each topic's recorder queue dropped (empty for a cut file).

        Example::

            recording.dropped()   # {'camera/image': 0}
        """
        raw = self.contents.records.get(END_RECORD, {}).get("dropped", "{}")
        return {str(k): int(v) for k, v in json.loads(raw).items()}

    def dataflow_text(self) -> tuple[str, str] | None:
        """The attached dataflow file: its original path and its text; None if none is attached.

        Example::

            path, text = recording.dataflow_text()
        """
        for name, data in self.contents.attachments.items():
            if name.endswith((".yml", ".yaml")):
                path = self.run_record().get("path") or name
                return path, data.decode("utf-8")
        return None

    # -------------------------------------------------------------- messages
    def messages(self, topics: set[str] | None = None) -> Iterator[RecordedMessage]:
        """The messages of ``topics`` (all when None) in file order, with their metadata.

        Example::

            for m in recording.messages({"camera/image"}): ...
        """
        wanted = None
        if topics is not None:
            wanted = [c.topic for c in self.contents.channels.values() if c.topic.split("#")[0] in topics]
        pending: dict[str, tuple[int, dict[str, Any]]] = {}
        for _schema, channel, message in self._raw_messages(wanted):
            meta = channel.metadata
            topic = f"{meta.get('node')}/{meta.get('output')}"
            if meta.get("role") == ROLE_METADATA:
                pending[topic] = (message.sequence, from_json(message.data))
                continue
            held = pending.pop(topic, None)
            spec = meta.get("format_spec")
            yield RecordedMessage(
                topic=topic,
                node=meta.get("node", ""),
                output=meta.get("output", ""),
                format=meta.get("format", ARROW),
                log_time=message.log_time,
                publish_time=message.publish_time,
                sequence=message.sequence,
                data=message.data,
                metadata=held[1] if held is not None and held[0] == message.sequence else {},
                format_spec=json.loads(spec) if spec else None,
                channel_id=channel.id,
            )

    def _raw_messages(self, topics: list[str] | None) -> Iterator[Any]:
        """The file's messages in file order, one chunk in memory at a time.

        Read front to back even when the file has a summary: mcap's seeking reader, asked for
        file order, decompresses every chunk before it yields the first message (the whole
        recording in memory).
        """
        from mcap.reader import NonSeekingReader

        if self.complete:
            self._stream.seek(0)
            yield from NonSeekingReader(self._stream).iter_messages(topics=topics, log_time_order=False)
            return
        with self.path.open("rb") as stream:
            try:
                yield from NonSeekingReader(stream).iter_messages(topics=topics, log_time_order=False)
            except Exception:  # the cut: whatever a partial record raises (see `_scan`), read so far is kept
                return


def _summary(stream: IO[bytes]) -> Any:
    """The file's summary, or None when it has none (a cut file, or one written without)."""
    from mcap.reader import SeekingReader

    try:
        summary = SeekingReader(stream).get_summary()
    except Exception:  # a cut file ends in a partial record: struct, EOF or decompression errors
        summary = None
    stream.seek(0)
    return summary


def _from_summary(stream: IO[bytes], summary: Any) -> Contents:
    from mcap.reader import SeekingReader

    contents = Contents()
    for channel in summary.channels.values():
        schema = summary.schemas.get(channel.schema_id)
        contents.channels[channel.id] = _channel(channel, schema)
    stats = summary.statistics
    if stats is not None:
        contents.messages = stats.message_count
        contents.start, contents.end = stats.message_start_time, stats.message_end_time
        for channel_id, count in stats.channel_message_counts.items():
            if channel_id in contents.channels:
                contents.channels[channel_id].messages = count
    for index in summary.chunk_indexes:
        _count_chunk(contents, index.compression, index.compressed_size, index.uncompressed_size)
    reader = SeekingReader(stream)
    contents.attachments = {a.name: a.data for a in reader.iter_attachments()}
    contents.records = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
    stream.seek(0)
    return contents


def _channel(channel: Any, schema: Any) -> ChannelSummary:
    return ChannelSummary(
        channel.id,
        channel.topic,
        channel.message_encoding,
        schema.name if schema else "",
        dict(channel.metadata),
        schema_encoding=schema.encoding if schema else "",
        schema_data=bytes(schema.data) if schema else b"",
    )


def _count_chunk(contents: Contents, compression: str, compressed: int, uncompressed: int) -> None:
    contents.chunks += 1
    contents.compressions.add(compression or "none")
    contents.compressed_bytes += compressed
    contents.uncompressed_bytes += uncompressed


def _scan(path: Path) -> tuple[Contents, str]:
    """What a file without a summary holds, read from its start to where it was cut."""
    from mcap.records import Attachment, Channel, Chunk, Message, Metadata, Schema
    from mcap.stream_reader import StreamReader, breakup_chunk

    contents = Contents()
    schemas: dict[int, Any] = {}
    damage = ""
    with path.open("rb") as stream:
        try:
            for record in StreamReader(stream, emit_chunks=True).records:
                inner = [record]
                if isinstance(record, Chunk):
                    inner = breakup_chunk(record)  # before counting it: a cut chunk raises here
                    _count_chunk(contents, record.compression, len(record.data), record.uncompressed_size)
                for item in inner:
                    if isinstance(item, Schema):
                        schemas[item.id] = item
                    elif isinstance(item, Channel):
                        contents.channels[item.id] = _channel(item, schemas.get(item.schema_id))
                    elif isinstance(item, Message):
                        _count_message(contents, item)
                    elif isinstance(item, Attachment):
                        contents.attachments[item.name] = item.data
                    elif isinstance(item, Metadata):
                        contents.records[item.name] = dict(item.metadata)
        except Exception as exc:  # the cut: a partial record raises struct, EOF or decompression errors
            damage = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return contents, damage or "no summary (the file was not finished)"


def _count_message(contents: Contents, message: Any) -> None:
    channel = contents.channels.get(message.channel_id)
    if channel is not None:
        channel.messages += 1
    if not contents.messages or message.log_time < contents.start:
        contents.start = message.log_time
    contents.end = max(contents.end, message.log_time)
    contents.messages += 1
