"""`doradus record` writes an MCAP file that the plain `mcap` reader and pyarrow read alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml
from tests.conftest import Ran
from tests.recording.conftest import MESSAGES, Pipeline

# Reads a recording with `mcap` and `pyarrow` only, and proves it: no `doradus` module was loaded.
PLAIN_READER = textwrap.dedent(
    """
    import json, sys
    import pyarrow as pa
    from mcap.reader import make_reader

    found = {"topics": {}, "values": {}, "metadata": {}, "schemas": {}, "attachments": [], "messages": 0}
    with open(sys.argv[1], "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        found["statistics"] = summary.statistics.message_count
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            found["messages"] += 1
            found["topics"][channel.topic] = found["topics"].get(channel.topic, 0) + 1
            if channel.message_encoding == "arrow.ipc.stream":
                table = pa.ipc.open_stream(message.data).read_all()
                found["values"].setdefault(channel.topic, []).append(table.to_pylist())
                found["schemas"][channel.topic] = pa.ipc.read_schema(pa.py_buffer(schema.data)).names
                found.setdefault("times", []).append(message.publish_time <= message.log_time)
            elif channel.message_encoding == "json":
                found["metadata"].setdefault(channel.topic, []).append(json.loads(message.data))
        found["attachments"] = [(a.name, a.media_type, a.data.decode()) for a in reader.iter_attachments()]
    found["doradus_loaded"] = any(name.startswith("doradus") for name in sys.modules)
    print(json.dumps(found))
    """
)


def plain_read(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_READER, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    assert found["doradus_loaded"] is False
    return found


def test_the_plain_mcap_reader_and_pyarrow_read_every_message(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, ran = recorded
    found = plain_read(pipeline.folder / "run.mcap")

    assert found["topics"] == {
        "source/count": MESSAGES,
        "source/count#metadata": MESSAGES,
        "transform/doubled": MESSAGES,
        "transform/doubled#metadata": MESSAGES,
    }
    assert found["statistics"] == found["messages"] == 4 * MESSAGES
    # a plain array is one column "value"; a record batch keeps its columns
    assert found["values"]["source/count"] == [[{"value": n}] for n in range(1, MESSAGES + 1)]
    assert found["values"]["transform/doubled"] == [
        [{"x": 2 * n, "label": f"n{n}"}] for n in range(1, MESSAGES + 1)
    ]
    assert found["schemas"] == {"source/count": ["value"], "transform/doubled": ["x", "label"]}
    assert all(found["times"]), "a message was received before it was sent"
    assert found["metadata"]["transform/doubled#metadata"][0] == {
        "sequence": 1,
        "metadata": {"seq": 1, "tags": ["a", "b"], "stage": "doubled"},
    }
    (attachment,) = found["attachments"]
    assert attachment[:2] == ["dataflow.yml", "application/yaml"]
    assert attachment[2] == (pipeline.folder / "dataflow.yml").read_text()
    # the recorded run ran as `doradus run` would: the sink got everything
    assert [row["value"] for row in pipeline.sink()] == [
        [{"x": 2 * n, "label": f"n{n}"}] for n in range(1, 21)
    ]
    assert f"recorded {2 * MESSAGES} messages on 2 topics" in ran.stderr


def test_recording_info_counts_what_the_plain_reader_counts(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, _ = recorded
    found = plain_read(pipeline.folder / "run.mcap")

    shown = pipeline.doradus("recording", "info", "run.mcap", "--output", "json")
    assert shown.returncode == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["complete"] is True
    assert info["messages"] == found["messages"]
    assert {t["topic"]: t["messages"] for t in info["topics"]} == {
        t: n for t, n in found["topics"].items() if not t.endswith("#metadata")
    }
    assert {t["topic"]: t["metadata_messages"] for t in info["topics"]} == {
        t.removesuffix("#metadata"): n for t, n in found["topics"].items() if t.endswith("#metadata")
    }
    assert [t["dropped"] for t in info["topics"]] == [0, 0]
    assert info["compression"] == ["zstd"]
    assert info["dataflow"] == pipeline.folder.name
    # the rate is messages per second over the recording, as `mcap info` computes it
    rate = info["topics"][0]["rate"]
    assert rate == MESSAGES / info["duration"]

    table = pipeline.doradus("recording", "info", "run.mcap")
    assert table.returncode == 0, table.output
    assert "source/count       arrow   int64" in table.stdout
    assert "transform/doubled  arrow   record batch" in table.stdout


def test_topics_chooses_what_is_recorded_and_lz4_compresses(tmp_path: Path) -> None:
    from tests.recording.conftest import make_pipeline

    pipeline = make_pipeline(tmp_path)
    ran = pipeline.doradus(
        "record",
        "dataflow.yml",
        "-o",
        "t.mcap",
        "--topics",
        "transform",
        "--compression",
        "lz4",
        "--no-color",
    )
    assert ran.returncode == 0, ran.output
    found = plain_read(tmp_path / "t.mcap")
    assert set(found["topics"]) == {"transform/doubled", "transform/doubled#metadata"}
    info = _yaml(pipeline.doradus("recording", "info", "t.mcap", "--output", "yaml").stdout)
    assert info["compression"] == ["lz4"]


def test_a_topic_that_names_nothing_is_refused_with_the_choices(tmp_path: Path) -> None:
    from tests.recording.conftest import make_pipeline

    pipeline = make_pipeline(tmp_path)
    ran = pipeline.doradus("record", "dataflow.yml", "-o", "t.mcap", "--topics", "camera/*", "--no-color")
    assert ran.returncode == 2
    assert "--topics 'camera/*' names no output" in ran.stderr
    assert "source/count, transform/doubled" in ran.stderr
    assert not (tmp_path / "t.mcap").exists()


def test_info_of_a_file_that_is_not_mcap_names_the_cause(tmp_path: Path) -> None:
    from tests.recording.conftest import make_pipeline

    pipeline = make_pipeline(tmp_path)
    ran = pipeline.doradus("recording", "info", "dataflow.yml")
    assert ran.returncode == 1
    assert "dataflow.yml is not an MCAP file" in ran.stderr


def _yaml(text: str) -> Any:
    return yaml.safe_load(text)


def test_the_snippets_of_the_recording_page_read_a_recording(recorded: tuple[Pipeline, Ran]) -> None:
    pipeline, _ = recorded
    page = (Path(__file__).resolve().parents[2] / "docs" / "recording.md").read_text()
    reader, cut = re.findall(r"^```python\n(.*?)^```$", page, flags=re.MULTILINE | re.DOTALL)
    for snippet in (reader, cut):
        done = subprocess.run(
            [sys.executable, "-c", snippet], cwd=pipeline.folder, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    shown = subprocess.run(
        [sys.executable, "-c", reader], cwd=pipeline.folder, capture_output=True, text=True, timeout=60
    ).stdout.splitlines()
    first = next(line for line in shown if line.startswith("transform/doubled"))
    assert first.endswith("[{'x': 2, 'label': 'n1'}] {'seq': 1, 'tags': ['a', 'b'], 'stage': 'doubled'}")
    assert "path: transform.py" in "\n".join(shown)
