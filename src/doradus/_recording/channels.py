"""The format mapping: what a recording's topics, channels and schema records hold.

- One channel per recorded output, its topic ``NODE/OUTPUT``; a new channel of the same topic
  when an output's Arrow schema changes (MCAP allows several channels per topic).
- Arrow outputs: message encoding `ARROW_ENCODING`, each message a self-contained Arrow IPC
  stream (`doradus._recording.arrow_ipc`); the schema record holds the Arrow schema as an IPC
  schema message (encoding `ARROW_SCHEMA_ENCODING`; ``pyarrow.ipc.read_schema`` reads it).
- Other formats (Cap'n Proto, FlatBuffers, Avro, plug-ins): the message is the format's own
  encoded bytes, message encoding the format's name; the schema record holds the schema file's
  text, its encoding the file's suffix (``capnp``, ``fbs``, ``avsc``) and its name the type.
- Metadata: a message with keys besides ``timestamp`` gets a message on the companion channel
  `metadata_topic` (JSON, `doradus._recording.metadata_json`) with the same ``sequence``, just
  before it. ``publish_time`` is the sender's timestamp, ``log_time`` the recorder's receive time.
- Each channel's metadata names its ``node``, ``output``, ``format`` and ``role``.

Example:
    >>> topic_of("camera", "image"), metadata_topic("camera/image")
    ('camera/image', 'camera/image#metadata')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from doradus._files import read_regular_file
from doradus._recording.errors import RecordingError
from doradus._recording.metadata_json import SCHEMA as METADATA_SCHEMA
from doradus._wire.format_spec import FormatSpec

PROFILE = "doradus"
"""The MCAP header's profile."""
ARROW = "arrow"
ARROW_ENCODING = "arrow.ipc.stream"
ARROW_SCHEMA_ENCODING = "arrow.ipc.schema"
METADATA_ENCODING = "json"
METADATA_SUFFIX = "#metadata"
ROLE_DATA = "data"
ROLE_METADATA = "metadata"
DATAFLOW_MEDIA_TYPE = "application/yaml"
"""The media type of the attachment holding the dataflow file."""
RUN_RECORD = "doradus.run"
"""The metadata record written first: the dataflow's ``path`` and ``name``, the ``run_id``."""
END_RECORD = "doradus.recording"
"""The metadata record written last: ``dropped`` (JSON: topic → messages the recorder's queue dropped)."""
MAX_SCHEMA_BYTES = 1 << 20


@dataclass(frozen=True)
class SchemaRecord:
    """What a channel's MCAP schema record holds, and its messages' encoding.

    Example:
        >>> SchemaRecord("Reading", "avsc", b"{}", "avro").message_encoding
        'avro'
    """

    name: str
    encoding: str
    data: bytes
    message_encoding: str
    channel_metadata: dict[str, str] = field(default_factory=dict)


def topic_of(node: str, output: str) -> str:
    """The topic of a node's output.

    Example:
        >>> topic_of("planner", "op/path")
        'planner/op/path'
    """
    return f"{node}/{output}"


def metadata_topic(topic: str) -> str:
    """The topic of the companion channel holding ``topic``'s metadata.

    Example:
        >>> metadata_topic("a/b")
        'a/b#metadata'
    """
    return topic + METADATA_SUFFIX


def channel_metadata(node: str, output: str, fmt: str, role: str = ROLE_DATA) -> dict[str, str]:
    """The metadata map of a channel.

    Example:
        >>> channel_metadata("a", "b", "arrow")
        {'node': 'a', 'output': 'b', 'format': 'arrow', 'role': 'data'}
    """
    return {"node": node, "output": output, "format": fmt, "role": role}


def arrow_schema_record(schema_bytes: bytes, type_name: str, node: str, output: str) -> SchemaRecord:
    """The schema record of an Arrow channel: the IPC schema message of its batches.

    Example:
        >>> import pyarrow as pa
        >>> blob = pa.schema([pa.field("value", pa.int64())]).serialize().to_pybytes()
        >>> arrow_schema_record(blob, "int64", "a", "b").encoding
        'arrow.ipc.schema'
    """
    meta = channel_metadata(node, output, ARROW)
    return SchemaRecord(type_name, ARROW_SCHEMA_ENCODING, schema_bytes, ARROW_ENCODING, meta)


def codec_schema_record(spec: FormatSpec, node: str, output: str) -> SchemaRecord:
    """The schema record of an output in another format: its schema file's text.

    The channel's metadata also keeps ``format_spec`` (the format and schema as the dataflow
    declared them, JSON), which replay uses to decode the messages.

    Raises:
        RecordingError: the schema file cannot be read.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "r.avsc").write_text('{"type": "record", "name": "R", "fields": []}')
        >>> record = codec_schema_record(FormatSpec("avro", folder / "r.avsc"), "a", "b")
        >>> record.name, record.encoding, record.message_encoding
        ('r', 'avsc', 'avro')
    """
    data = b""
    encoding = spec.name
    if spec.schema is not None:
        encoding = spec.schema.suffix.lstrip(".") or spec.name
        try:
            data = read_regular_file(str(spec.schema), limit=MAX_SCHEMA_BYTES)
        except OSError as exc:
            raise RecordingError(
                f"cannot read the schema {spec.schema} of {topic_of(node, output)} ({exc})",
                fix="keep the schema files where the dataflow names them while recording",
            ) from exc
    name = spec.type or (Path(spec.schema).stem if spec.schema else spec.name)
    meta = {**channel_metadata(node, output, spec.name), "format_spec": json.dumps(spec.to_json())}
    return SchemaRecord(name, encoding, data, spec.name, meta)


def metadata_schema_record(node: str, output: str, fmt: str) -> SchemaRecord:
    """The schema record of a metadata channel (a JSON Schema).

    Example:
        >>> metadata_schema_record("a", "b", "arrow").channel_metadata["role"]
        'metadata'
    """
    data = json.dumps(METADATA_SCHEMA).encode()
    meta = channel_metadata(node, output, fmt, ROLE_METADATA)
    return SchemaRecord("doradus.Metadata", "jsonschema", data, METADATA_ENCODING, meta)
