"""`RecordingWriter`: messages into an MCAP file, chunked, compressed, safe against a crash.

Messages are grouped in chunks of about ``chunk_size`` bytes, each compressed (zstd by
default, lz4, or none) and written as soon as it is full, or ``flush_interval`` seconds after
its first message (`RecordingWriter.flush_due`), so a slow topic does not keep messages in
memory and a process killed at any moment leaves a file readable up to its last complete
chunk. What is written reaches the operating system at once (it survives the process, not a
power cut: nothing is synced to disk). `finish` writes the summary and footer.

Memory stays bounded by one chunk (or one message, when a message is larger).

Example::

    writer = RecordingWriter(Path("run.mcap"))
    writer.attach_dataflow(Path("dataflow.yml"), text, run_id="r1")
    writer.add_arrow("camera", "image", pa.array([1, 2]), {"seq": 1}, log_time, publish_time)
    writer.finish({})
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa

from doradus._recording.arrow_ipc import StoredArrow, stored_arrow
from doradus._recording.channels import (
    DATAFLOW_MEDIA_TYPE,
    END_RECORD,
    PROFILE,
    RUN_RECORD,
    SchemaRecord,
    arrow_schema_record,
    codec_schema_record,
    metadata_schema_record,
    metadata_topic,
    topic_of,
)
from doradus._recording.config import Compression
from doradus._recording.errors import RecordingError, require_mcap
from doradus._recording.metadata_json import custom_keys, to_json
from doradus._wire.format_spec import FormatSpec

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

DEFAULT_CHUNK_SIZE = 1 << 20
DEFAULT_FLUSH_INTERVAL = 1.0
_SEQUENCE_WRAP = 1 << 32


class _WrittenThrough(io.BufferedWriter):
    """A file whose every write reaches the operating system at once (a SIGKILL loses nothing)."""

    def write(self, buffer: ReadableBuffer, /) -> int:
        count = super().write(buffer)
        self.flush()
        return count


class RecordingWriter:
    """Writes one recording; not thread-safe (one thread adds messages and finishes).

    Args:
        path: the file to create (replaced if it exists).
        compression: ``zstd``, ``lz4`` or ``none``.
        chunk_size: bytes of messages per chunk before it is compressed and written.
        flush_interval: seconds after which a chunk is written even if not full.

    Raises:
        RecordingError: ``mcap`` (or the compression's library) is missing, or the file
            cannot be created.

    Example::

        writer = RecordingWriter(Path("run.mcap"), compression="lz4")
    """

    def __init__(
        self,
        path: Path,
        *,
        compression: Compression = "zstd",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        require_mcap()
        from mcap.exceptions import UnsupportedCompressionError
        from mcap.writer import CompressionType, Writer

        kind = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}
        try:
            self._file = _WrittenThrough(io.FileIO(path, "w"))
        except OSError as exc:
            raise RecordingError(
                f"cannot create {path} ({exc})", fix="choose a writable -o/--output"
            ) from exc
        try:
            self._writer = Writer(self._file, chunk_size=chunk_size, compression=kind[compression])
        except UnsupportedCompressionError as exc:
            self._file.close()
            raise RecordingError(f"{compression} compression is not installed ({exc})") from exc
        self._writer.start(profile=PROFILE, library=_library())
        self.path = path
        self.flush_interval = flush_interval
        self.counts: dict[str, int] = {}
        """Messages written per topic."""
        self._schemas: dict[tuple[str, str, bytes], int] = {}
        self._channels: dict[tuple[str, int, str], int] = {}
        self._arrow: dict[str, dict[tuple[pa.DataType, bool], int]] = {}
        self._codec_channels: dict[str, int] = {}
        self._meta_channels: dict[str, int] = {}
        self._first_pending = 0.0
        """When the oldest message not yet written in a chunk was added (monotonic; 0: none)."""

    # ----------------------------------------------------------------- records
    def attach_dataflow(self, path: Path, text: str | None, *, name: str, run_id: str) -> None:
        """Record the dataflow file (an attachment, unless ``text`` is None) and the run (`RUN_RECORD`).

        Example::

            writer.attach_dataflow(Path("/p/dataflow.yml"), text, name="demo", run_id="r1")
        """
        now = time.time_ns()
        self._writer.add_metadata(RUN_RECORD, {"path": str(path), "name": name, "run_id": run_id})
        if text is not None:
            self._writer.add_attachment(now, now, path.name, DATAFLOW_MEDIA_TYPE, text.encode("utf-8"))

    def add_arrow(
        self,
        node: str,
        output: str,
        value: pa.Array,
        metadata: Mapping[str, Any],
        log_time: int,
        publish_time: int,
    ) -> None:
        """Add an Arrow message: a self-contained IPC stream on its output's channel.

        Example::

            writer.add_arrow("camera", "image", frame, event.metadata, time.time_ns(), sent_ns)
        """
        self.add_stored(node, output, stored_arrow(value), metadata, log_time, publish_time)

    def add_stored(
        self,
        node: str,
        output: str,
        stored: StoredArrow,
        metadata: Mapping[str, Any],
        log_time: int,
        publish_time: int,
    ) -> None:
        """Add an Arrow message already made into its IPC stream (`arrow_ipc.stored_arrow`).

        Example::

            writer.add_stored("camera", "image", stored_arrow(frame), {}, time.time_ns(), sent_ns)
        """
        channel = self._arrow_channel(node, output, stored)
        self._add(node, output, "arrow", channel, stored.data, metadata, log_time, publish_time)

    def add_encoded(
        self,
        node: str,
        output: str,
        spec: FormatSpec,
        data: bytes | memoryview,
        metadata: Mapping[str, Any],
        log_time: int,
        publish_time: int,
    ) -> None:
        """Add a message of another format: its encoded bytes, with the schema on the channel.

        Raises:
            RecordingError: the format's schema file cannot be read (first message only).

        Example::

            writer.add_encoded("imu", "reading", spec, codec.encode(value), {}, now, sent_ns)
        """
        topic = topic_of(node, output)
        channel = self._codec_channels.get(topic)
        if channel is None:
            channel = self._codec_channels[topic] = self._channel(
                topic, codec_schema_record(spec, node, output)
            )
        self._add(node, output, spec.name, channel, data, metadata, log_time, publish_time)

    def _add(
        self,
        node: str,
        output: str,
        fmt: str,
        channel: int,
        data: Any,
        metadata: Mapping[str, Any],
        log_time: int,
        publish_time: int,
    ) -> None:
        topic = topic_of(node, output)
        sequence = (self.counts.get(topic, 0) + 1) % _SEQUENCE_WRAP
        self.counts[topic] = self.counts.get(topic, 0) + 1
        if custom := custom_keys(metadata):
            meta_channel = self._meta_channels.get(topic)
            if meta_channel is None:
                record = metadata_schema_record(node, output, fmt)
                meta_channel = self._meta_channels[topic] = self._channel(metadata_topic(topic), record)
            self._writer.add_message(
                meta_channel, log_time, to_json(sequence, custom), publish_time, sequence
            )
        self._writer.add_message(channel, log_time, data, publish_time, sequence)
        if not self._first_pending:
            self._first_pending = time.monotonic()

    def _arrow_channel(self, node: str, output: str, stored: StoredArrow) -> int:
        """The channel of this output and value type: a new one when the output's type changes."""
        known = self._arrow.setdefault(topic_of(node, output), {})
        key = (stored.value_type, stored.struct)
        channel = known.get(key)
        if channel is None:
            type_name = "record batch" if stored.struct else str(stored.value_type)
            record = arrow_schema_record(stored.schema.serialize().to_pybytes(), type_name, node, output)
            channel = known[key] = self._channel(topic_of(node, output), record)
        return channel

    def _channel(self, topic: str, record: SchemaRecord) -> int:
        key = (record.name, record.encoding, record.data)
        schema_id = self._schemas.get(key)
        if schema_id is None:
            schema_id = self._schemas[key] = self._writer.register_schema(*key)
        channel: int = self._writer.register_channel(
            topic, record.message_encoding, schema_id, record.channel_metadata
        )
        return channel

    # ------------------------------------------------------------------ timing
    def flush_due(self) -> float | None:
        """Seconds until the chunk in progress should be written (0: now); None when it is empty.

        Example::

            event = node.next(timeout=writer.flush_due())
        """
        if not self._first_pending:
            return None
        return max(0.0, self._first_pending + self.flush_interval - time.monotonic())

    def flush_if_due(self) -> None:
        """Write the chunk in progress if it has waited `flush_interval` seconds.

        Example::

            writer.flush_if_due()
        """
        if self._first_pending and time.monotonic() - self._first_pending >= self.flush_interval:
            _typed(self._writer.flush)()  # mcap leaves these two unannotated
            self._first_pending = 0.0

    def finish(self, dropped: Mapping[str, int]) -> None:
        """Write the last chunk, the `END_RECORD` metadata, the summary and the footer; close.

        Args:
            dropped: messages each topic's recorder queue dropped (written in `END_RECORD`).

        Example::

            writer.finish({"camera/image": 0})
        """
        self._writer.add_metadata(END_RECORD, {"dropped": json.dumps(dict(dropped))})
        _typed(self._writer.finish)()
        self._file.close()


def _typed(method: Any) -> Callable[[], None]:
    return cast("Callable[[], None]", method)


def _library() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"doradus {version('doradus')}"
    except PackageNotFoundError:
        return "doradus"
