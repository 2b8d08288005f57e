"""A new data format for a running node, checked against its dataflow as ``doradus check`` would.

`apply_format_change` writes the node's new ``data_format``/``schema`` into the dataflow's
text and loads it again: every refusal names the checker's message and fix, and an accepted
change gives the formats each node reads and writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doradus._dataflow.format_change import FormatChange, apply_format_change, changed_text, first_problem
from doradus._exceptions import DescriptorError

WRITER = {"type": "record", "name": "Reading", "fields": [{"name": "seq", "type": "long"}]}
READER_OK = {
    "type": "record",
    "name": "Reading",
    "fields": [{"name": "seq", "type": "long"}, {"name": "unit", "type": "string", "default": "m"}],
}
READER_BAD = {"type": "record", "name": "Reading", "fields": [{"name": "unit", "type": "string"}]}

FLOW = """\
nodes:
  - id: source
    path: dynamic
    outputs: [out, debug]
    output_formats:
      debug: {data_format: avro, schema: reading.avsc}
  - id: sink
    path: dynamic
    inputs:
      x: source/out
{reader}
"""


def _flow(tmp_path: Path, reader: str = "") -> tuple[str, Path]:
    for name, schema in {"reading.avsc": WRITER, "ok.avsc": READER_OK, "bad.avsc": READER_BAD}.items():
        (tmp_path / name).write_text(json.dumps(schema))
    return FLOW.replace("{reader}", reader), tmp_path / "dataflow.yml"


def _refusal(text: str, path: Path, change: FormatChange) -> tuple[str, str | None]:
    with pytest.raises(DescriptorError) as refused:
        apply_format_change(text, path, "source", change)
    return first_problem(refused.value)


def test_an_accepted_change_gives_the_new_writer_and_reader_formats(tmp_path: Path) -> None:
    text, path = _flow(tmp_path)
    new_text, flow = apply_format_change(text, path, "source", FormatChange("avro", "reading.avsc"))
    source, sink = flow.node("source"), flow.node("sink")
    assert source.output_formats["out"].name == "avro"
    assert source.output_formats["out"].schema == tmp_path / "reading.avsc"
    assert sink.input_formats["x"].name == "avro"
    assert "data_format: avro" in new_text
    # Only the schema: the node keeps its format. An output with its own format keeps it.
    _, again = apply_format_change(new_text, path, "source", FormatChange(schema={"file": "ok.avsc"}))
    assert again.node("source").output_formats["out"].schema == tmp_path / "ok.avsc"
    _, arrow = apply_format_change(new_text, path, "source", FormatChange("arrow"))
    assert arrow.node("source").output_formats["out"].name == "arrow"
    assert arrow.node("source").output_formats["debug"].name == "avro"


@pytest.mark.parametrize(
    ("change", "message", "fix"),
    [
        (FormatChange("avroo"), "must be one of `arrow`, `avro`", "did you mean `avro`?"),
        (FormatChange("avro"), "data format `avro` needs a schema", "add `schema: schemas/<file>.avsc`"),
        (FormatChange("avro", "gone.avsc"), "does not exist", "fix the path"),
        (FormatChange("arrow", "reading.avsc"), "takes no schema", "remove `schema`"),
    ],
)
def test_a_bad_format_is_refused_with_the_checkers_message_and_fix(
    tmp_path: Path, change: FormatChange, message: str, fix: str
) -> None:
    text, path = _flow(tmp_path)
    got_message, got_fix = _refusal(text, path, change)
    assert message in got_message
    assert got_fix is not None
    assert fix in got_fix


def test_an_invalid_schema_file_is_refused(tmp_path: Path) -> None:
    text, path = _flow(tmp_path)
    (tmp_path / "broken.avsc").write_text(
        '{"type": "record", "name": "B", "fields": [{"name": "x", "type": "Nope"}]}'
    )
    message, fix = _refusal(text, path, FormatChange("avro", "broken.avsc"))
    assert "Nope" in message
    assert fix == "fix the schema file or the type name"


def test_a_receiver_expecting_another_format_refuses_the_change(tmp_path: Path) -> None:
    text, path = _flow(
        tmp_path, "    inputs:\n      y:\n        source: source/out\n        data_format: arrow\n"
    )
    text = text.replace("    inputs:\n      x: source/out\n", "")
    message, fix = _refusal(text, path, FormatChange("avro", "reading.avsc"))
    assert message == "input `y` expects `arrow` but its source writes `avro (reading.avsc)`"
    assert fix == "set `data_format: arrow` on the source output, or expect `avro` here"


def test_an_avro_reader_schema_must_read_the_new_writer_schema(tmp_path: Path) -> None:
    reader = "      y:\n        source: source/out\n        schema: {schema}\n"
    good, path = _flow(tmp_path, reader.replace("{schema}", "ok.avsc"))
    _, flow = apply_format_change(good, path, "source", FormatChange("avro", "reading.avsc"))
    assert flow.node("sink").input_formats["y"].reader_schema == tmp_path / "ok.avsc"
    bad, path = _flow(tmp_path, reader.replace("{schema}", "bad.avsc"))
    message, _fix = _refusal(bad, path, FormatChange("avro", "reading.avsc"))
    assert message.startswith("input `y` cannot read what its source writes")


def test_an_unknown_node_or_text_is_refused(tmp_path: Path) -> None:
    text, path = _flow(tmp_path)
    with pytest.raises(DescriptorError) as missing:
        changed_text(text, path, "ghost", FormatChange("avro"))
    assert first_problem(missing.value) == ("the dataflow has no node `ghost`", "name one of its nodes")
    with pytest.raises(DescriptorError):
        changed_text("nodes: [", path, "source", FormatChange("avro"))


def test_values_from_a_message_are_checked_for_their_types() -> None:
    assert FormatChange.from_values(" avro ", "r.avsc:Reading") == FormatChange("avro", "r.avsc:Reading")
    assert FormatChange.from_values(None, None).empty
    with pytest.raises(ValueError, match="must name a data format"):
        FormatChange.from_values(3, None)
    with pytest.raises(ValueError, match="must be `file"):
        FormatChange.from_values("avro", ["r.avsc"])
