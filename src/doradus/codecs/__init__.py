"""Codecs: how a message value is encoded (Arrow, Cap'n Proto, FlatBuffers, Avro).

The registry maps the names used in dataflow files (``data_format:``) to
implementations, imported only when used; each message header carries the
codec's tag so a receiver knows how the bytes were written. Third-party
codecs register through the ``doradus.codecs`` entry-point group (their
class sets a free tag, 4 to 7).

Example:
    >>> get_codec_class("arrow").tag
    0
"""

from __future__ import annotations

from doradus._registry import Registry
from doradus._wire.format_spec import FormatSpec
from doradus.codecs._base import Buffer, Codec, Detects, as_bytes

_BUILTIN: dict[str, tuple[str, str, str | None]] = {
    # name: (module, class, extra to install when its imports fail)
    "arrow": ("doradus.codecs._arrow", "ArrowCodec", None),
    "capnp": ("doradus.codecs._capnp", "CapnpCodec", "capnp"),
    "flatbuffers": ("doradus.codecs._flatbuffers", "FlatBuffersCodec", "flatbuffers"),
    "avro": ("doradus.codecs._avro", "AvroCodec", "avro"),
}
TAGS = {"arrow": 0, "capnp": 1, "flatbuffers": 2, "avro": 3}
"""The header tag of each built-in codec."""
TAG_NAMES = {tag: name for name, tag in TAGS.items()}


_REGISTRY = Registry("data format", "doradus.codecs", _BUILTIN)


def codec_names() -> list[str]:
    """Names of every available codec (built-in and entry points).

    Example:
        >>> codec_names()[:2]
        ['arrow', 'avro']
    """
    return _REGISTRY.names()


def get_codec_class(name: str) -> type[Codec]:
    """The codec class registered under ``name``.

    Raises:
        KeyError: no such codec (the message lists the known ones).
        ImportError: its optional dependencies are missing (the message names
            the ``pip install`` to run).

    Example:
        >>> get_codec_class("arrow").__name__
        'ArrowCodec'
    """
    codec: type[Codec] = _REGISTRY.load(name)
    return codec


def get_codec(spec: FormatSpec) -> Codec:
    """A codec for ``spec`` (its schema loaded and validated).

    Raises:
        KeyError: unknown format.
        ImportError: the format's packages are missing.
        SchemaError: the schema is missing, invalid, or has no such type.

    Example:
        >>> get_codec(FormatSpec("arrow")).name
        'arrow'
    """
    return get_codec_class(spec.name)(spec)


__all__ = [
    "TAGS",
    "TAG_NAMES",
    "Buffer",
    "Codec",
    "Detects",
    "FormatSpec",
    "as_bytes",
    "codec_names",
    "get_codec",
    "get_codec_class",
]
