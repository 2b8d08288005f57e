"""`export_recording`: each recorded topic as a JSON lines, CSV or Parquet file.

One file per topic, ``DIR/NODE/OUTPUT.<jsonl|csv|parquet>``, one row per message:

- ``log_time`` and ``publish_time`` (ns since the Unix epoch), ``sequence``;
- ``metadata``: the sender's keys (JSON text in CSV; a datetime as ISO 8601);
- ``value``: the message as plain values (JSON in JSON lines and CSV; Arrow values as lists,
  other formats as their codec's ``to_python`` gives them, bytes as base64), or in Parquet the
  Arrow array itself, a ``list`` column (one list per message; other formats: their codec's
  ``to_arrow``). A topic whose Arrow type changes continues in ``OUTPUT.2.parquet``.

Files are written as messages are read: memory stays bounded (Parquet: by a row group).

Example::

    files = export_recording(Path("run.mcap"), Path("run"), "parquet")
"""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, Literal

import pyarrow as pa

from doradus._recording.plan import select_topics
from doradus._recording.reader import RecordedMessage, Recording

ExportFormat = Literal["jsonl", "csv", "parquet"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("jsonl", "csv", "parquet")
ROW_GROUP_MESSAGES = 1024
ROW_GROUP_BYTES = 64 << 20
COLUMNS = ("log_time", "publish_time", "sequence", "metadata", "value")


def export_recording(
    path: Path, folder: Path, fmt: ExportFormat, topics: Sequence[str] = ()
) -> dict[str, list[Path]]:
    """Write each topic of the recording at ``path`` (or those ``topics`` select) under ``folder``.

    Returns:
        The files written, by topic.

    Raises:
        RecordingError: the file cannot be read, or a topic pattern names nothing.

    Example::

        export_recording(Path("run.mcap"), Path("out"), "jsonl", ["camera"])
    """
    with Recording.open(path) as recording:
        chosen = select_topics(recording.topics(), topics, "recorded topic")
        sinks: dict[str, _Sink] = {}
        try:
            for message in recording.messages(set(chosen)):
                sink = sinks.get(message.topic)
                if sink is None:
                    sink = sinks[message.topic] = _SINKS[fmt](folder / message.topic, recording)
                sink.add(message)
        finally:
            for sink in sinks.values():
                sink.close()
    return {topic: sink.files for topic, sink in sinks.items()}


class _Sink:
    """The file(s) of one topic."""

    suffix = ""

    def __init__(self, stem: Path, recording: Recording) -> None:
        self.stem = stem
        self.recording = recording
        self.files: list[Path] = []
        stem.parent.mkdir(parents=True, exist_ok=True)

    def next_file(self) -> Path:
        number = len(self.files) + 1
        file = self.stem.with_name(self.stem.name + (f".{number}" if number > 1 else "") + self.suffix)
        self.files.append(file)
        return file

    def add(self, message: RecordedMessage) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def python_value(self, message: RecordedMessage) -> Any:
        if message.format_spec is None:
            return message.arrow().to_pylist()
        codec = self.recording.codec(message.channel_id)
        return codec.to_python(codec.decode(message.data))


class _JsonLines(_Sink):
    suffix = ".jsonl"

    def __init__(self, stem: Path, recording: Recording) -> None:
        super().__init__(stem, recording)
        self.out: IO[str] = self.next_file().open("w", encoding="utf-8")

    def add(self, message: RecordedMessage) -> None:
        row = {
            "log_time": message.log_time,
            "publish_time": message.publish_time,
            "sequence": message.sequence,
            "metadata": message.metadata,
            "value": self.python_value(message),
        }
        self.out.write(json.dumps(row, default=_plain, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.out.close()


class _Csv(_Sink):
    suffix = ".csv"

    def __init__(self, stem: Path, recording: Recording) -> None:
        super().__init__(stem, recording)
        self.out: IO[str] = self.next_file().open("w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.out)
        self.writer.writerow(COLUMNS)

    def add(self, message: RecordedMessage) -> None:
        metadata = json.dumps(message.metadata, default=_plain, separators=(",", ":"))
        value = json.dumps(self.python_value(message), default=_plain, separators=(",", ":"))
        self.writer.writerow((message.log_time, message.publish_time, message.sequence, metadata, value))

    def close(self) -> None:
        self.out.close()


class _Parquet(_Sink):
    suffix = ".parquet"

    def __init__(self, stem: Path, recording: Recording) -> None:
        super().__init__(stem, recording)
        self.writer: Any = None
        self.type: pa.DataType | None = None
        self.rows: list[tuple[int, int, int, str, pa.Array]] = []
        self.bytes = 0

    def add(self, message: RecordedMessage) -> None:
        if message.format_spec is None:
            value = message.arrow()
        else:
            codec = self.recording.codec(message.channel_id)
            value = codec.to_arrow(codec.decode(message.data))
        if self.type is not None and value.type != self.type:
            self.close()
        self.type = value.type
        metadata = json.dumps(message.metadata, default=_plain, separators=(",", ":"))
        self.rows.append((message.log_time, message.publish_time, message.sequence, metadata, value))
        self.bytes += value.nbytes
        if len(self.rows) >= ROW_GROUP_MESSAGES or self.bytes >= ROW_GROUP_BYTES:
            self.write_rows()

    def write_rows(self) -> None:
        import pyarrow.parquet as pq

        if not self.rows:
            return
        times, sent, sequences, metadata, values = zip(*self.rows, strict=True)
        offsets = [0]
        for value in values:
            offsets.append(offsets[-1] + len(value))
        flat = pa.concat_arrays(list(values)) if values else pa.array([])
        table = pa.table(
            {
                "log_time": pa.array(times, pa.int64()),
                "publish_time": pa.array(sent, pa.int64()),
                "sequence": pa.array(sequences, pa.uint32()),
                "metadata": pa.array(metadata, pa.string()),
                "value": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat),
            }
        )
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.next_file(), table.schema)
        self.writer.write_table(table)
        self.rows, self.bytes = [], 0

    def close(self) -> None:
        self.write_rows()
        if self.writer is not None:
            self.writer.close()
            self.writer = None


_SINKS: dict[str, type[_Sink]] = {"jsonl": _JsonLines, "csv": _Csv, "parquet": _Parquet}


def _plain(value: Any) -> Any:
    """What JSON cannot hold, made plain: datetimes as ISO 8601, bytes as base64, decimals as text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)  # decimals and anything else: their text
