"""A message's metadata as JSON (what a recording's metadata channels hold), and back.

Metadata values are dora-rs's types: bool, int, float, str, a list of one of those, or a
``datetime``. JSON keeps all but the last; a ``datetime`` is written as
``{"$datetime": "<ISO 8601>"}`` (no metadata value is a mapping, so this cannot be confused
with one). The ``timestamp`` key, the send time the runtime sets, is not written here: it is
the MCAP message's ``publish_time``.

Example:
    >>> from datetime import datetime, UTC
    >>> text = to_json(7, {"seq": 3, "at": datetime(2025, 1, 2, tzinfo=UTC)})
    >>> text
    b'{"sequence":7,"metadata":{"seq":3,"at":{"$datetime":"2025-01-02T00:00:00+00:00"}}}'
    >>> from_json(text)
    {'seq': 3, 'at': datetime.datetime(2025, 1, 2, 0, 0, tzinfo=datetime.timezone.utc)}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from doradus._recording.errors import RecordingError

TIMESTAMP = "timestamp"
"""The metadata key holding the send time: stored as the message's ``publish_time`` instead."""
DATETIME = "$datetime"

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "doradus message metadata",
    "type": "object",
    "properties": {
        "sequence": {"type": "integer", "description": "the sequence of the message it belongs to"},
        "metadata": {"type": "object", "description": "the sender's keys; a datetime as {'$datetime': ISO}"},
    },
    "required": ["sequence", "metadata"],
}
"""The JSON Schema of a metadata message (the schema record of every metadata channel)."""


def custom_keys(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The keys a recording stores as metadata: all but ``timestamp``.

    Example:
        >>> custom_keys({"timestamp": 1, "seq": 2})
        {'seq': 2}
    """
    return {k: v for k, v in metadata.items() if k != TIMESTAMP}


def to_json(sequence: int, metadata: Mapping[str, Any]) -> bytes:
    """The metadata message of the message ``sequence`` of a topic.

    Example:
        >>> to_json(1, {"tags": ["a", "b"]})
        b'{"sequence":1,"metadata":{"tags":["a","b"]}}'
    """
    values = {k: {DATETIME: v.isoformat()} if isinstance(v, datetime) else v for k, v in metadata.items()}
    return json.dumps({"sequence": sequence, "metadata": values}, separators=(",", ":")).encode()


def from_json(data: bytes | memoryview) -> dict[str, Any]:
    """The metadata of a metadata message (datetimes restored).

    Raises:
        RecordingError: ``data`` is not a metadata message.

    Example:
        >>> from_json(b'{"sequence": 1, "metadata": {"ok": true}}')
        {'ok': True}
    """
    try:
        found = json.loads(bytes(data))
        values = found["metadata"]
        return {k: _restored(v) for k, v in values.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RecordingError(
            f"a metadata message is not of the form {{'sequence': N, 'metadata': {{...}}}} ({exc})",
            fix="the file may be damaged or not written by `doradus record`",
        ) from exc


def _restored(value: Any) -> Any:
    if isinstance(value, dict):
        return datetime.fromisoformat(str(value[DATETIME]))
    return value
