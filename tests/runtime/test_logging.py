"""Structured log records of a real run: capture, levels, formats, storage, log inputs."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Ran

from doradus._observability.records import RECORD_KEYS
from doradus._observability.store import log_files, read_records

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

CHATTY = {
    "dataflow.yml": """
        nodes:
          - id: chatty
            path: chatty.py
            outputs: [out]
          - id: quiet
            path: quiet.py
            inputs:
              x: chatty/out
    """,
    "chatty.py": """
        import json, logging, sys
        from doradus import Node

        node = Node()
        print("plain stdout line")
        print("plain stderr line", file=sys.stderr)
        print("ERROR: prefixed on stdout")
        print("[warn] bracketed on stdout")
        print(json.dumps({"level": "error", "msg": "json line", "code": 7}))
        logging.getLogger("chatty.camera").info("frame %d", 3, extra={"seq": 3, "lens": "wide"})
        logging.getLogger("chatty").debug("only with --log-level debug")
        node.log("warn", "via node.log", fields={"temp": 81}, unit="C")
        try:
            1 / 0
        except ZeroDivisionError:
            logging.exception("it broke")
        node.send_output("out", [1])
    """,
    "quiet.py": """
        from doradus import Node

        for event in Node():
            pass
    """,
}


def _records(tmp_path: Path) -> list[dict[str, Any]]:
    (run_dir,) = (tmp_path / "out").iterdir()
    return list(read_records(run_dir))


def _find(records: list[dict[str, Any]], message: str) -> dict[str, Any]:
    found = [r for r in records if r["message"].startswith(message)]
    assert found, f"no record {message!r} in {[r['message'] for r in records]}"
    return found[0]


def test_every_line_becomes_a_structured_record(dataflow: Callable[..., Ran], tmp_path: Path) -> None:
    ran = dataflow(CHATTY)
    assert ran.returncode == 0, ran.output
    records = _records(tmp_path)
    run_id = (tmp_path / "out").iterdir().__next__().name
    for record in records:
        assert list(record) == list(RECORD_KEYS)
        assert ISO.match(record["timestamp"]), record["timestamp"]
        assert record["dataflow"] == tmp_path.name or record["dataflow"]
        assert record["run_id"] == run_id
        assert record["machine"]
    assert _find(records, "plain stdout line")["level"] == "INFO"
    assert _find(records, "plain stdout line")["source"] == "stdout"
    assert _find(records, "plain stderr line")["level"] == "WARN"
    assert _find(records, "plain stderr line")["source"] == "stderr"
    assert _find(records, "prefixed on stdout")["level"] == "ERROR"
    assert _find(records, "bracketed on stdout")["level"] == "WARN"
    json_line = _find(records, "json line")
    assert (json_line["level"], json_line["fields"]) == ("ERROR", {"code": 7})
    frame = _find(records, "frame 3")
    assert frame["source"] == "log"
    assert frame["level"] == "INFO"
    assert frame["fields"] == {"logger": "chatty.camera", "seq": 3, "lens": "wide"}
    via = _find(records, "via node.log")
    assert via["level"] == "WARN"
    assert via["fields"]["temp"] == 81
    assert via["fields"]["unit"] == "C"
    broke = _find(records, "it broke")
    assert broke["level"] == "ERROR"
    assert "ZeroDivisionError" in broke["message"]
    assert not [r for r in records if "only with --log-level debug" in r["message"]]
    runtime = [(r["node"], r["message"]) for r in records if r["source"] == "runtime"]
    assert ("chatty", "exited (status 0)") in runtime
    assert any(node == "quiet" and msg.startswith("started (pid ") for node, msg in runtime)
    assert all(r["node"] in ("chatty", "quiet") for r in records)


def test_log_level_filters_at_the_source_and_in_the_store(
    dataflow: Callable[..., Ran], tmp_path: Path
) -> None:
    ran = dataflow(CHATTY, "--log-level", "warn")
    assert ran.returncode == 0, ran.output
    records = _records(tmp_path)
    levels = {r["level"] for r in records}
    assert levels <= {"WARN", "ERROR", "FATAL"}, levels
    assert _find(records, "via node.log")
    assert "plain stdout line" not in ran.stdout


def test_the_dataflow_env_sets_the_level_unless_the_command_line_does(
    dataflow: Callable[..., Ran], tmp_path: Path
) -> None:
    files = dict(CHATTY)
    files["dataflow.yml"] = "env:\n  DORADUS_LOG_LEVEL: error\n" + textwrap.dedent(CHATTY["dataflow.yml"])
    ran = dataflow(files)
    assert ran.returncode == 0, ran.output
    assert {r["level"] for r in _records(tmp_path) if r["node"] == "chatty"} == {"ERROR"}
    for old in (tmp_path / "out").iterdir():
        shutil.rmtree(old)
    ran = dataflow(files, "--log-level", "info")
    assert ran.returncode == 0, ran.output
    assert _find(_records(tmp_path), "frame 3")["level"] == "INFO"


def test_debug_level_reaches_the_nodes_logging(dataflow: Callable[..., Ran], tmp_path: Path) -> None:
    ran = dataflow(CHATTY, "--log-level", "debug")
    assert ran.returncode == 0, ran.output
    assert _find(_records(tmp_path), "only with --log-level debug")["level"] == "DEBUG"


def test_log_format_json_prints_one_record_per_line(dataflow: Callable[..., Ran], tmp_path: Path) -> None:
    ran = dataflow(CHATTY, "--log-format", "json")
    assert ran.returncode == 0, ran.output
    printed = [json.loads(line) for line in ran.stdout.splitlines() if line.startswith("{")]
    assert printed, ran.stdout
    assert [r["message"] for r in printed] == [r["message"] for r in _records(tmp_path)]


def test_log_format_compact_and_pretty(dataflow: Callable[..., Ran], tmp_path: Path) -> None:
    compact = dataflow(CHATTY, "--log-format", "compact")
    assert compact.returncode == 0, compact.output
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} E chatty: prefixed on stdout$", compact.stdout, re.M)
    pretty = dataflow(CHATTY)
    assert "chatty | plain stdout line" in pretty.stdout.splitlines()
    assert "chatty | ERROR prefixed on stdout" in pretty.stdout.splitlines()
    assert "chatty | INFO  frame 3  seq=3 lens=wide" not in pretty.stdout
    assert "chatty | frame 3  seq=3 lens=wide" in pretty.stdout.splitlines()


def test_a_failed_node_is_recorded_by_the_runtime(dataflow: Callable[..., Ran], tmp_path: Path) -> None:
    ran = dataflow(
        {
            "dataflow.yml": """
                nodes:
                  - id: crasher
                    path: crasher.py
            """,
            "crasher.py": """
                import sys
                print("about to fail", file=sys.stderr)
                sys.exit(3)
            """,
        }
    )
    assert ran.returncode == 1
    failed = _find(_records(tmp_path), "failed: exit status 3")
    assert (failed["level"], failed["node"], failed["source"]) == ("ERROR", "crasher", "runtime")
    assert failed["fields"] == {"event": "failed", "exit_code": 3}
    assert "crasher | ERROR failed: exit status 3" in ran.stdout


def test_a_python_traceback_is_one_error_record(dataflow: Callable[..., Ran], tmp_path: Path) -> None:
    ran = dataflow(
        {
            "dataflow.yml": """
                nodes:
                  - id: boom
                    path: boom.py
            """,
            "boom.py": """
                import sys
                print("before", file=sys.stderr)
                def inner():
                    raise KeyError("missing")
                inner()
            """,
        }
    )
    assert ran.returncode == 1
    records = [r for r in _records(tmp_path) if r["source"] == "stderr"]
    assert records[0]["message"] == "before"
    (trace,) = [r for r in records if r["message"].startswith("Traceback")]
    assert trace["level"] == "ERROR"
    assert trace["message"].splitlines()[-1] == "KeyError: 'missing'"
    assert 'raise KeyError("missing")' in trace["message"]
    assert len(records) == 2


def test_dora_nodes_log_through_the_same_records(dataflow: Callable[..., Ran], tmp_path: Path) -> None:
    ran = dataflow(
        {
            "dataflow.yml": """
                nodes:
                  - id: legacy
                    path: legacy.py
            """,
            "legacy.py": """
                from dora import Node
                node = Node()
                node.log("warn", "from dora api", fields={"k": "v"})
                node.log_error("dora error")
            """,
        }
    )
    assert ran.returncode == 0, ran.output
    records = _records(tmp_path)
    warned = _find(records, "from dora api")
    assert (warned["level"], warned["fields"]["k"]) == ("WARN", "v")
    assert _find(records, "dora error")["level"] == "ERROR"
    assert len([r for r in records if r["message"] == "dora error"]) == 1


LOG_SINK = {
    "dataflow.yml": """
        nodes:
          - id: talker
            path: talker.py
            outputs: [out]
          - id: other
            path: other.py
          - id: sink
            path: sink.py
            inputs:
              warnings: dora/logs/warn
              from_other: dora/logs/info/other
    """,
    "talker.py": """
        import logging
        from doradus import Node
        node = Node()
        logging.getLogger("t").warning("talker warns %d", 1)
        logging.getLogger("t").info("talker info")
        node.log("error", "talker errs")
    """,
    "other.py": """
        from doradus import Node
        node = Node()
        node.log("info", "other info")
        node.log("debug", "other debug")
    """,
    "sink.py": """
        import json, logging
        from doradus import Input, InputClosed, Node
        node = Node()
        got = []
        for event in node:
            if isinstance(event, Input):
                record = json.loads(event.value[0].as_py())
                got.append((event.id, record["node"], record["level"], record["message"]))
                logging.warning("sink saw %s", record["message"])  # never fed back to itself
            elif isinstance(event, InputClosed):
                got.append((event.id, "closed"))
        with open("sink.json", "w") as f:
            json.dump(got, f)
    """,
}


def test_log_inputs_deliver_matching_records_and_close_at_the_end(
    dataflow: Callable[..., Ran], tmp_path: Path
) -> None:
    ran = dataflow(LOG_SINK, "--log-level", "debug", timeout=60)
    assert ran.returncode == 0, ran.output
    got = [tuple(x) for x in json.loads((tmp_path / "sink.json").read_text())]
    warnings = {(n, lvl, m) for i, n, *rest in got if i == "warnings" and rest for lvl, m in [rest]}
    assert ("talker", "WARN", "talker warns 1") in warnings
    assert ("talker", "ERROR", "talker errs") in warnings
    assert not [w for w in warnings if w[1] in ("INFO", "DEBUG")]
    assert not [w for w in warnings if w[0] == "sink"]
    from_other = {tuple(x[1:]) for x in got if x[0] == "from_other" and len(x) == 4}
    assert ("other", "INFO", "other info") in from_other
    assert not [x for x in from_other if x[0] != "other" or x[1] == "DEBUG"]
    assert ("warnings", "closed") in got
    assert ("from_other", "closed") in got


def test_log_files_rotate_by_size(dataflow: Callable[..., Ran], tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("DORADUS_LOG_MAX_BYTES", "4KiB")
    monkeypatch.setenv("DORADUS_LOG_BACKUPS", "50")
    ran = dataflow(
        {
            "dataflow.yml": """
                nodes:
                  - id: spam
                    path: spam.py
            """,
            "spam.py": """
                for i in range(200):
                    print(f"line {i:04d}")
            """,
        }
    )
    assert ran.returncode == 0, ran.output
    (run_dir,) = (tmp_path / "out").iterdir()
    files = log_files(run_dir)
    assert len(files) > 3
    assert all(f.stat().st_size <= 4096 for f in files)
    lines = [r["message"] for r in read_records(run_dir) if r["source"] == "stdout"]
    assert lines == [f"line {i:04d}" for i in range(200)]


@pytest.mark.parametrize("level", ["WARN", "ERROR"])
def test_classified_levels_from_common_prefixes(level: str) -> None:
    from doradus._observability.records import classify_line

    assert classify_line(f"2026-01-01 10:00:00,123 {level} module: text", "stdout")[0] == level
    assert classify_line(f"[2026-01-01T10:00:00Z {level} my_crate] text", "stdout")[0] == level
    assert classify_line(f'time=1 level={level.lower()} msg="x"', "stdout")[0] == level
