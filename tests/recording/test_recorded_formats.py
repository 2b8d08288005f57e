"""Outputs in Cap'n Proto and Avro are recorded with their schema, and replayed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.recording.conftest import Pipeline

pytest.importorskip("capnp")
pytest.importorskip("fastavro")

FILES = {
    "schemas/reading.capnp": """
        @0xb6c7d8e9fa0b1c2d;

        struct Reading {
          label @0 :Text;
          seq @1 :Int64;
        }
    """,
    "schemas/summary.avsc": """
        {"type": "record", "name": "Summary", "fields": [
          {"name": "label", "type": "string"},
          {"name": "seq", "type": "long"}
        ]}
    """,
    "dataflow.yml": """
        nodes:
          - id: sensor
            path: sensor.py
            inputs:
              tick: dora/timer/millis/10
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
          - id: sink
            path: sink.py
            inputs:
              summary: summarizer/summary
    """,
    "sensor.py": """
        from doradus import Input, Node
        node = Node()
        seq = 0
        for event in node:
            if isinstance(event, Input):
                seq += 1
                node.send_output("reading", {"label": f"r{seq}", "seq": seq}, {"unit": "volt"})
                if seq == 5:
                    break
    """,
    "summarizer.py": """
        from doradus import Input, Node
        node = Node()
        for event in node:
            if isinstance(event, Input):
                node.send_output("summary", {"label": event.value.label.upper(), "seq": event.value.seq})
    """,
    "sink.py": """
        import json, os
        from doradus import Input, Node
        with open(os.environ["SINK_OUT"], "w") as out:
            for event in Node():
                if isinstance(event, Input):
                    out.write(json.dumps(event.to_python()) + "\\n")
    """,
}
# The Avro messages read with fastavro alone, from the schema the recording holds.
READ_AVRO = textwrap.dedent(
    """
    import io, json, sys
    import fastavro
    from mcap.reader import make_reader

    with open(sys.argv[1], "rb") as f:
        reader = make_reader(f)
        found = []
        for schema, channel, message in reader.iter_messages(topics=["summarizer/summary"]):
            parsed = fastavro.parse_schema(json.loads(schema.data))
            found.append(fastavro.schemaless_reader(io.BytesIO(message.data), parsed))
        channel = [c for c in reader.get_summary().channels.values() if c.topic == "sensor/reading"][0]
        schema = reader.get_summary().schemas[channel.schema_id]
    print(json.dumps({"avro": found, "capnp": [channel.message_encoding, schema.encoding, schema.name]}))
    """
)


def test_schema_formats_are_recorded_with_their_schema_and_replayed(tmp_path: Path) -> None:
    from tests.conftest import write_files

    write_files(tmp_path, FILES)
    pipeline = Pipeline(tmp_path)
    ran = pipeline.doradus("record", "dataflow.yml", "-o", "run.mcap", "--no-color", sink="sink.jsonl")
    assert ran.returncode == 0, ran.output
    expected = [{"label": f"R{n}", "seq": n} for n in range(1, 6)]
    assert pipeline.sink() == expected

    done = subprocess.run(
        [sys.executable, "-c", READ_AVRO, str(tmp_path / "run.mcap")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["avro"] == expected
    assert found["capnp"] == ["capnp", "capnp", "Reading"]

    replayed = pipeline.doradus(
        "replay", "run.mcap", "--replace", "sensor", "--no-color", sink="replayed.jsonl"
    )
    assert replayed.returncode == 0, replayed.output
    assert pipeline.sink("replayed.jsonl") == expected

    # the schema files gone, export reads the copies the recording holds
    (tmp_path / "schemas").rename(tmp_path / "moved")
    export = pipeline.doradus("recording", "export", "run.mcap", "--format", "jsonl", "-o", "out")
    assert export.returncode == 0, export.output
    rows = [json.loads(line) for line in (tmp_path / "out/sensor/reading.jsonl").read_text().splitlines()]
    assert [r["value"] for r in rows] == [{"label": f"r{n}", "seq": n} for n in range(1, 6)]
    assert rows[0]["metadata"] == {"unit": "volt"}
