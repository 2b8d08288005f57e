"""`doradus recording export` writes each topic as JSON lines, CSV or Parquet, a row per message."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
from tests.conftest import Ran
from tests.recording.conftest import MESSAGES, Pipeline

DOUBLED = [[{"x": 2 * n, "label": f"n{n}"}] for n in range(1, MESSAGES + 1)]


def test_jsonl_holds_each_message_with_its_times_and_metadata(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, _ = recorded
    ran = pipeline.doradus("recording", "export", "run.mcap", "--format", "jsonl", "-o", "jsonl")
    assert ran.returncode == 0, ran.output
    assert "exported 2 topics to jsonl" in ran.stderr
    rows = [
        json.loads(line)
        for line in (pipeline.folder / "jsonl/transform/doubled.jsonl").read_text().splitlines()
    ]
    assert [r["value"] for r in rows] == DOUBLED
    assert [r["sequence"] for r in rows] == list(range(1, MESSAGES + 1))
    assert rows[0]["metadata"] == {"seq": 1, "tags": ["a", "b"], "stage": "doubled"}
    assert all(r["publish_time"] <= r["log_time"] for r in rows)
    counts = (pipeline.folder / "jsonl/source/count.jsonl").read_text().splitlines()
    assert [json.loads(line)["value"] for line in counts] == [[n] for n in range(1, MESSAGES + 1)]


def test_parquet_keeps_arrow_values_as_a_list_column(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, _ = recorded
    ran = pipeline.doradus(
        "recording", "export", "run.mcap", "--format", "parquet", "-o", "pq", "--topics", "transform"
    )
    assert ran.returncode == 0, ran.output
    assert not (pipeline.folder / "pq/source").exists()
    table = pq.read_table(pipeline.folder / "pq/transform/doubled.parquet")
    assert table.column_names == ["log_time", "publish_time", "sequence", "metadata", "value"]
    assert str(table.schema.field("value").type) == "list<element: struct<x: int64, label: string>>"
    assert table.column("value").to_pylist() == DOUBLED
    assert json.loads(table.column("metadata")[0].as_py()) == {
        "seq": 1,
        "tags": ["a", "b"],
        "stage": "doubled",
    }


def test_csv_has_a_header_and_json_cells(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, _ = recorded
    ran = pipeline.doradus("recording", "export", "run.mcap", "--format", "csv", "-o", "csv")
    assert ran.returncode == 0, ran.output
    with (pipeline.folder / "csv/source/count.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == MESSAGES
    assert [json.loads(r["value"]) for r in rows] == [[n] for n in range(1, MESSAGES + 1)]
    assert json.loads(rows[-1]["metadata"]) == {"seq": MESSAGES, "tags": ["a", "b"]}
