"""Avro schema resolution rules, one by one (check_resolvable and schema_problems)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from doradus._exceptions import SchemaError
from doradus.codecs._avro_compat import check_resolvable, schema_problems

SCHEMAS = Path(__file__).parent / "schemas"


def rec(name: str, *fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def roundtrip(writer: Any, reader: Any, value: Any) -> Any:
    """What fastavro reads: proves the cases we call resolvable really are."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(writer), value)
    return fastavro.schemaless_reader(
        io.BytesIO(out.getvalue()), fastavro.parse_schema(writer), fastavro.parse_schema(reader)
    )


# -- primitives and promotions ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["null", "boolean", "int", "long", "float", "double", "bytes", "string"])
def test_same_primitive_resolves(name: str) -> None:
    assert check_resolvable(name, name) == []


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    ],
)
def test_promotions_resolve(writer: str, reader: str) -> None:
    assert check_resolvable(writer, reader) == []


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        ("long", "int"),
        ("double", "float"),
        ("float", "long"),
        ("string", "int"),
        ("boolean", "int"),
        ("null", "string"),
    ],
)
def test_demotions_and_unrelated_primitives_do_not_resolve(writer: str, reader: str) -> None:
    assert check_resolvable(writer, reader) == [
        f"<root>: the writer writes {writer}, which the reader cannot read as {reader}"
    ]


def test_logical_types_resolve_through_their_underlying_type() -> None:
    stamp = {"type": "long", "logicalType": "timestamp-millis"}
    assert check_resolvable(stamp, "long") == []
    assert check_resolvable("int", stamp) == []
    assert check_resolvable(stamp, "int") != []


# -- records ---------------------------------------------------------------------------------------


def test_record_fields_resolve_by_name_in_any_order() -> None:
    writer = rec("R", field("a", "int"), field("b", "string"))
    reader = rec("R", field("b", "string"), field("a", "long"))
    assert check_resolvable(writer, reader) == []
    assert roundtrip(writer, reader, {"a": 1, "b": "x"}) == {"b": "x", "a": 1}


def test_writer_fields_missing_in_the_reader_are_ignored() -> None:
    assert (
        check_resolvable(rec("R", field("a", "int"), field("gone", "string")), rec("R", field("a", "int")))
        == []
    )


def test_new_reader_field_needs_a_default() -> None:
    writer = rec("R", field("a", "int"))
    assert check_resolvable(writer, rec("R", field("a", "int"), field("b", "int", default=0))) == []
    assert check_resolvable(writer, rec("R", field("a", "int"), field("b", "int"))) == [
        "R.b: the reader field has no default and the writer has no such field"
    ]


def test_a_null_default_counts_as_a_default() -> None:
    reader = rec("R", field("note", ["null", "string"], default=None))
    assert check_resolvable(rec("R"), reader) == []


def test_reader_field_aliases_match_renamed_writer_fields() -> None:
    writer = rec("R", field("old", "int"))
    reader = rec("R", field("new", "long", aliases=["old"]))
    assert check_resolvable(writer, reader) == []
    assert check_resolvable(writer, rec("R", field("new", "long"))) == [
        "R.new: the reader field has no default and the writer has no such field"
    ]


def test_records_match_by_name_or_reader_alias() -> None:
    assert check_resolvable(rec("Old"), rec("New")) == [
        "<root>: the writer writes record Old, which the reader cannot read as record New"
    ]
    assert check_resolvable(rec("Old"), rec("New", aliases=["Old"])) == []
    # Namespaces may differ: the unqualified names match.
    assert check_resolvable(rec("R", namespace="a"), rec("R", namespace="b")) == []
    # A reader alias is relative to the reader's namespace, or a full name.
    assert check_resolvable(rec("Old", namespace="a"), rec("New", namespace="b", aliases=["a.Old"])) == []


def test_nested_record_paths_name_every_level() -> None:
    writer = rec("Outer", field("inner", rec("Inner", field("x", "string"))))
    reader = rec("Outer", field("inner", rec("Inner", field("x", "int"))))
    assert check_resolvable(writer, reader) == [
        "Outer.inner.x: the writer writes string, which the reader cannot read as int"
    ]


def test_recursive_records_resolve_without_looping() -> None:
    node = rec("Node", field("value", "int"), field("next", ["null", "Node"]))
    wider = rec("Node", field("value", "long"), field("next", ["null", "Node"]))
    assert check_resolvable(node, wider) == []
    assert check_resolvable(wider, node) == [
        "Node.value: the writer writes long, which the reader cannot read as int"
    ]


def test_every_reason_is_reported() -> None:
    writer = rec("R", field("a", "string"), field("b", "double"))
    reader = rec("R", field("a", "int"), field("b", "float"), field("c", "int"))
    assert len(check_resolvable(writer, reader)) == 3


# -- enums -----------------------------------------------------------------------------------------


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "E", "symbols": list(symbols), **extra}


def test_enum_writer_symbols_must_be_in_the_reader() -> None:
    assert check_resolvable(enum("A", "B"), enum("B", "A", "C")) == []
    assert check_resolvable(enum("A", "B", "C"), enum("A")) == [
        "<root>: the reader enum E lacks the writer's symbols B, C and has no default"
    ]


def test_enum_reader_default_covers_unknown_symbols() -> None:
    assert check_resolvable(enum("A", "B"), enum("A", "OTHER", default="OTHER")) == []


def test_enums_match_by_name() -> None:
    other = {"type": "enum", "name": "F", "symbols": ["A"]}
    assert check_resolvable(enum("A"), other) == [
        "<root>: the writer writes enum E, which the reader cannot read as enum F"
    ]


# -- arrays and maps -------------------------------------------------------------------------------


def test_array_items_resolve_recursively_with_a_path() -> None:
    writer = rec("Reading", field("values", {"type": "array", "items": "float"}))
    assert (
        check_resolvable(writer, rec("Reading", field("values", {"type": "array", "items": "double"}))) == []
    )
    assert check_resolvable(writer, rec("Reading", field("values", {"type": "array", "items": "int"}))) == [
        "Reading.values[]: the writer writes float, which the reader cannot read as int"
    ]


def test_map_values_resolve_recursively_with_a_path() -> None:
    writer = rec("R", field("attrs", {"type": "map", "values": "int"}))
    assert check_resolvable(writer, rec("R", field("attrs", {"type": "map", "values": "long"}))) == []
    assert check_resolvable(writer, rec("R", field("attrs", {"type": "map", "values": "boolean"}))) == [
        "R.attrs{}: the writer writes int, which the reader cannot read as boolean"
    ]


def test_array_and_map_do_not_resolve_to_each_other() -> None:
    assert check_resolvable({"type": "array", "items": "int"}, {"type": "map", "values": "int"}) == [
        "<root>: the writer writes array, which the reader cannot read as map"
    ]


# -- fixed -----------------------------------------------------------------------------------------


def test_fixed_needs_the_same_name_and_size() -> None:
    four = {"type": "fixed", "name": "F", "size": 4}
    assert check_resolvable(four, dict(four)) == []
    assert check_resolvable(four, {"type": "fixed", "name": "F", "size": 8}) == [
        "<root>: fixed F has size 4 in the writer but 8 in the reader"
    ]
    assert check_resolvable(four, {"type": "fixed", "name": "G", "size": 4}) == [
        "<root>: the writer writes fixed F, which the reader cannot read as fixed G"
    ]


# -- unions ----------------------------------------------------------------------------------------


def test_each_writer_branch_must_resolve_to_a_reader_branch() -> None:
    assert check_resolvable(["null", "int"], ["null", "long", "string"]) == []
    assert check_resolvable(["null", "int", "string"], ["null", "int"]) == [
        "<root>: the writer writes string, which matches no branch of the reader union [null, int]"
    ]


def test_non_union_writer_must_match_a_reader_branch() -> None:
    assert check_resolvable("string", ["null", "string"]) == []
    assert check_resolvable("int", ["null", "double"]) == []
    assert check_resolvable("boolean", ["null", "string"]) == [
        "<root>: the writer writes boolean, which matches no branch of the reader union [null, string]"
    ]


def test_union_writer_with_non_union_reader_needs_every_branch() -> None:
    assert check_resolvable(["int", "long"], "long") == []
    assert check_resolvable(["null", "string"], "string") == [
        "<root>: the writer writes null, which the reader cannot read as string"
    ]


def test_union_branches_resolve_deeply() -> None:
    writer = ["null", rec("P", field("x", "string"))]
    reader = ["null", rec("P", field("x", "int"))]
    assert check_resolvable(writer, reader) == [
        "P.x: the writer writes string, which the reader cannot read as int"
    ]


# -- named references, schema errors ---------------------------------------------------------------


def test_named_references_are_followed() -> None:
    point = rec("Point", field("x", "float"))
    writer = rec("Path", field("a", point), field("b", "Point"))
    reader_point = rec("Point", field("x", "double"))
    reader = rec("Path", field("a", reader_point), field("b", "Point"))
    assert check_resolvable(writer, reader) == []


def test_parsed_schemas_are_accepted() -> None:
    writer = fastavro.parse_schema(rec("R", field("a", "int")))
    reader = fastavro.parse_schema(rec("R", field("a", "string")))
    assert check_resolvable(writer, reader) == [
        "R.a: the writer writes int, which the reader cannot read as string"
    ]


def test_an_invalid_schema_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="unknown type 'Nope'"):
        check_resolvable(rec("R", field("a", "Nope")), "int")


# -- schema_problems (files) -----------------------------------------------------------------------


def test_schema_problems_on_the_test_files() -> None:
    assert schema_problems(SCHEMAS / "reading.avsc", SCHEMAS / "reading_v2.avsc") == []
    problems = schema_problems(SCHEMAS / "reading.avsc", SCHEMAS / "reading_bad_reader.avsc")
    assert problems == [
        "Reading.label: the writer writes string, which the reader cannot read as int "
        "(writer reading.avsc, reader reading_bad_reader.avsc)",
        "Reading.unit: the reader field has no default and the writer has no such field "
        "(writer reading.avsc, reader reading_bad_reader.avsc)",
    ]


def test_schema_problems_with_named_types(tmp_path: Path) -> None:
    reader = tmp_path / "pose.avsc"
    pose = rec(
        "Pose", field("x", "double"), field("y", "double"), field("z", "double"), namespace="doradus.test"
    )
    reader.write_text(json.dumps(pose), encoding="utf-8")
    assert schema_problems(SCHEMAS / "reading.avsc", reader, writer_type="Pose") == []
    assert schema_problems(SCHEMAS / "reading.avsc", reader, reader_type="Pose") == [
        "<root>: the writer writes record doradus.test.Reading, which the reader cannot read as "
        "record doradus.test.Pose (writer reading.avsc, reader pose.avsc)"
    ]


def test_schema_problems_reports_files_that_cannot_load() -> None:
    problems = schema_problems(SCHEMAS / "bad.avsc", SCHEMAS / "missing.avsc")
    assert len(problems) == 2
    assert "not valid JSON" in problems[0]
    assert "does not exist" in problems[1]
    assert schema_problems(SCHEMAS / "reading.avsc", SCHEMAS / "reading.avsc", reader_type="Nope")[
        0
    ].endswith("or leave it out to use the file's top-level schema")
