"""The codec registry: hooks readable without a codec's library, tags built from the classes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from doradus._exceptions import SchemaError
from doradus.codecs import TAG_NAMES, TAGS, FormatSpec, codec_class, codec_names, get_codec_class, tag_name


def test_the_tag_tables_come_from_the_classes() -> None:
    assert TAGS == {"arrow": 0, "capnp": 1, "flatbuffers": 2, "avro": 3}
    assert {name: codec_class(name).tag for name in TAGS} == TAGS
    assert {tag: name for name, tag in TAGS.items()} == TAG_NAMES
    assert [tag_name(tag) for tag in range(8)] == ["arrow", "capnp", "flatbuffers", "avro"] + [None] * 4


def test_the_hooks_of_the_built_in_codecs() -> None:
    classes = {name: codec_class(name) for name in TAGS}
    hooks = {n: (c.needs_schema, c.schema_suffix, c.type_kind) for n, c in classes.items()}
    assert hooks == {
        "arrow": (False, "", None),
        "capnp": (True, ".capnp", "struct"),
        "flatbuffers": (True, ".fbs", "root table"),
        "avro": (True, ".avsc", None),
    }
    assert set(TAGS) <= set(codec_names())


def test_a_missing_library_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastavro", None)  # `import fastavro` fails
    assert codec_class("avro").schema_suffix == ".avsc"  # the hooks need no library
    with pytest.raises(ImportError, match=r"pip install 'doradus\[avro\]'"):
        get_codec_class("avro")


def test_by_default_an_input_may_only_name_the_writers_type() -> None:
    writer = FormatSpec("capnp", Path("r.capnp"), "Reading")
    assert codec_class("capnp").check_readable(writer, FormatSpec("capnp", Path("r2.capnp"))) == writer
    with pytest.raises(SchemaError, match="expects `Other`"):
        codec_class("capnp").check_readable(writer, FormatSpec("capnp", Path("r.capnp"), "Other"))
