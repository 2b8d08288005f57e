"""A real dataflow mixing formats: capnp → avro → arrow, values checked at every hop."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Ran

SCHEMAS = {
    "schemas/reading.capnp": """
        @0xb6c7d8e9fa0b1c2d;

        struct Reading {
          label @0 :Text;
          seq @1 :Int64;
          values @2 :List(Float64);
          blob @3 :Data;
        }
    """,
    "schemas/summary.avsc": """
        {"type": "record", "name": "Summary", "fields": [
          {"name": "label", "type": "string"},
          {"name": "seq", "type": "long"},
          {"name": "total", "type": "double"},
          {"name": "size", "type": "int"}
        ]}
    """,
    "schemas/summary_v2.avsc": """
        {"type": "record", "name": "Summary", "fields": [
          {"name": "label", "type": "string"},
          {"name": "seq", "type": "long"},
          {"name": "total", "type": "double"},
          {"name": "unit", "type": "string", "default": "volt"}
        ]}
    """,
}

FLOW = """
    nodes:
      - id: sensor
        path: sensor.py
        outputs: [reading]
        data_format: capnp
        schema: schemas/reading.capnp:Reading
      - id: summarizer
        path: summarizer.py
        inputs:
          reading: sensor/reading
        outputs: [summary]
        data_format: avro
        schema: schemas/summary.avsc
      - id: tabler
        path: tabler.py
        inputs:
          summary:
            source: summarizer/summary
            schema: schemas/summary_v2.avsc
        outputs: [row]
      - id: sink
        path: sink.py
        inputs:
          row: tabler/row
"""

NODES = {
    "sensor.py": """
        from doradus import Node
        node = Node()
        for seq in range(5):
            node.send_output(
                "reading",
                {"label": f"r{seq}", "seq": seq, "values": [seq * 1.5, 2.0], "blob": bytes([seq]) * 3},
            )
    """,
    "summarizer.py": """
        from doradus import Input, Node
        node = Node()
        for event in node:
            if isinstance(event, Input):
                r = event.value  # the pycapnp reader, read in place
                assert event.data_format == "capnp", event.data_format
                assert type(r).__name__.endswith("Reader"), type(r)
                assert event.to_python()["blob"] == bytes([r.seq]) * 3
                node.send_output(
                    "summary",
                    {"label": r.label, "seq": r.seq, "total": sum(r.values), "size": len(r.blob)},
                )
    """,
    "tabler.py": """
        from doradus import Input, Node
        node = Node()
        for event in node:
            if isinstance(event, Input):
                assert event.data_format == "avro"
                s = event.value  # a dict, read with the v2 reader schema
                assert "size" not in s and s["unit"] == "volt", s
                node.send_output("row", event.to_arrow())
    """,
    "sink.py": """
        import json
        from doradus import Input, Node
        rows = []
        for event in Node():
            if isinstance(event, Input):
                assert event.data_format == "arrow"
                rows.extend(event.value.to_pylist())
        json.dump(rows, open("rows.json", "w"))
    """,
}


def test_capnp_then_avro_then_arrow(dataflow: Callable[..., Ran], tmp_path: Path) -> None:
    ran = dataflow({"dataflow.yml": FLOW, **SCHEMAS, **NODES})
    assert ran.returncode == 0, ran.output
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert rows == [
        {"label": f"r{seq}", "seq": seq, "total": seq * 1.5 + 2.0, "unit": "volt"} for seq in range(5)
    ]


def test_a_value_that_does_not_fit_the_schema_is_a_clear_error(
    dataflow: Callable[..., Ran], tmp_path: Path
) -> None:
    nodes = dict(NODES)
    nodes["sensor.py"] = """
        from doradus import EncodeError, Node
        node = Node()
        try:
            node.send_output("reading", {"label": 7, "nope": 1})
        except EncodeError as exc:
            print("refused:", exc)
    """
    ran = dataflow({"dataflow.yml": FLOW, **SCHEMAS, **nodes})
    assert ran.returncode == 0, ran.output
    (line,) = [x for x in ran.lines_of("sensor") if x.startswith("refused:")]
    assert "reading" in line
    assert "capnp" in line
