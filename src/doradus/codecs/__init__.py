"""Codecs: how a message value is encoded (Arrow, Cap'n Proto, FlatBuffers, Avro).

The registry maps the names used in dataflow files (``data_format:``) to
implementations, imported only when used; each message header carries the
codec's tag so a receiver knows how the bytes were written. Third-party
codecs register through the ``doradus.codecs`` entry-point group (their
class sets a free tag, 4 to 7). What differs between codecs is said by hooks
on their class (`Codec`), which the rest of Doradus reads through
`codec_class`; no other part of Doradus names a codec.

May import: the wire format and the foundation modules; each codec its own
library, lazily. Never backends, the dataflow model, the node process, the runtime
or the control plane.

Example:
    >>> get_codec_class("arrow").tag
    0
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

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


_REGISTRY = Registry("data format", "doradus.codecs", _BUILTIN)

if TYPE_CHECKING:
    # Built on first use from each built-in class's `Codec.tag` (see `__getattr__`): reading
    # them imports the codec modules, which `import doradus.codecs` alone should not.
    TAGS: dict[str, int]
    """The header tag of each built-in codec.

    Example:
        >>> from doradus.codecs import TAGS
        >>> TAGS
        {'arrow': 0, 'capnp': 1, 'flatbuffers': 2, 'avro': 3}
    """
    TAG_NAMES: dict[int, str]
    """The built-in codec of each header tag.

    Example:
        >>> from doradus.codecs import TAG_NAMES
        >>> TAG_NAMES[0], TAG_NAMES.get(7)
        ('arrow', None)
    """


@functools.cache
def _builtin_tags() -> dict[str, int]:
    return {name: codec_class(name).tag for name in _BUILTIN}


def __getattr__(name: str) -> object:
    """``TAGS`` and ``TAG_NAMES``, built from the built-in codec classes when first asked for."""
    if name == "TAGS":
        return dict(_builtin_tags())
    if name == "TAG_NAMES":
        return {tag: codec for codec, tag in _builtin_tags().items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def codec_names() -> list[str]:
    """Names of every available codec (built-in and entry points).

    Example:
        >>> codec_names()[:2]
        ['arrow', 'avro']
    """
    return _REGISTRY.names()


def codec_class(name: str) -> type[Codec]:
    """The codec class registered under ``name``, to read its hooks: its library is not imported.

    Raises:
        KeyError: no such codec (the message lists the known ones).

    Example:
        >>> codec_class("avro").schema_suffix
        '.avsc'
    """
    codec: type[Codec] = _REGISTRY.find(name)
    return codec


def tag_name(tag: int) -> str | None:
    """The name of the codec whose messages carry ``tag``, built in or registered; None if none.

    Example:
        >>> tag_name(3), tag_name(7)
        ('avro', None)
    """
    for name, builtin in _builtin_tags().items():
        if builtin == tag:
            return name
    for name in codec_names():
        if name in _BUILTIN:
            continue
        try:
            if codec_class(name).tag == tag:
                return name
        except (ImportError, AttributeError):  # a broken plug-in names no tag
            continue
    return None


def get_codec_class(name: str) -> type[Codec]:
    """The codec class registered under ``name``, ready to use (its library imported).

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
