"""`FormatSpec`: a data format and its schema, as a dataflow declares them (no heavy imports).

Example:
    >>> str(FormatSpec("avro", Path("/s/reading.avsc")))
    'avro (reading.avsc)'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FormatSpec:
    """A data format and its schema, as the dataflow declares them.

    ``schema`` is the schema file (absolute once loaded from a dataflow):
    ``.capnp``, ``.fbs`` or ``.avsc``; ``type`` names the struct, table or
    record inside it (for Avro, optional: the file's top-level schema).
    ``reader_schema`` is an Avro reader schema a receiving input declares
    (schema evolution); None means the writer's.

    Example:
        >>> FormatSpec("capnp", Path("/s/reading.capnp"), "Reading").name
        'capnp'
    """

    name: str = "arrow"
    schema: Path | None = None
    type: str | None = None
    reader_schema: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (what the daemon hands a node in its configuration).

        Example:
            >>> FormatSpec("avro", Path("/s/r.avsc")).to_json()["schema"]
            '/s/r.avsc'
        """
        return {
            "name": self.name,
            "schema": None if self.schema is None else str(self.schema),
            "type": self.type,
            "reader_schema": None if self.reader_schema is None else str(self.reader_schema),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> FormatSpec:
        """The inverse of `to_json` (``None`` gives Arrow).

        Example:
            >>> FormatSpec.from_json({"name": "avro", "schema": "/s/r.avsc"}).schema
            PosixPath('/s/r.avsc')
        """
        if not value:
            return cls()
        schema = value.get("schema")
        reader = value.get("reader_schema")
        return cls(
            str(value.get("name") or "arrow"),
            None if schema is None else Path(schema),
            value.get("type"),
            None if reader is None else Path(reader),
        )

    def __str__(self) -> str:
        where = f" ({self.schema.name}{':' + self.type if self.type else ''})" if self.schema else ""
        return f"{self.name}{where}"
