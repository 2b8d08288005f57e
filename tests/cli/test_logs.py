"""``doradus logs``: every flag, on runs with known content.

A real coordinator process serves an external dataflow fed through
``POST /dataflows/{id}/report``; run folders on disk are written with LogStore.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.cli.conftest import api_headers, free_port

from doradus._observability.records import RECORD_KEYS, iso_timestamp, make_record
from doradus._observability.store import LogStore

DORADUS = [sys.executable, "-m", "doradus.cli"]
TRACE = "0af7651916cd43dd8448eb211c80319c"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Coordinator:
    env: dict[str, str]
    address: str
    folder: Path
    t0: float
    records: list[dict[str, Any]]

    @property
    def api(self) -> str:
        return f"http://{self.address}/api/v1"

    @property
    def headers(self) -> dict[str, str]:
        """The token the coordinator made in its runtime folder (any client of the user finds it)."""
        port = int(self.address.rpartition(":")[2])
        return api_headers(Path(self.env["XDG_RUNTIME_DIR"]) / "doradus", port)

    def __call__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Ran:
        proc = subprocess.run(
            [*DORADUS, *args],
            capture_output=True,
            text=True,
            env=env or self.env,
            cwd=cwd or self.folder,
            timeout=60,
        )
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    def register(self, name: str, run_id: str, nodes: list[str]) -> None:
        body = {"name": name, "id": run_id, "nodes": nodes, "machine": "test", "path": "/x/dataflow.yml"}
        httpx.post(
            f"{self.api}/dataflows/external", json=body, headers=self.headers, timeout=10
        ).raise_for_status()

    def report(self, run_id: str, records: list[dict[str, Any]], status: str | None = None) -> None:
        body = {"logs": records, "status": status}
        url = f"{self.api}/dataflows/{run_id}/report"
        httpx.post(url, json=body, headers=self.headers, timeout=10).raise_for_status()


def known_records(t0: float) -> list[dict[str, Any]]:
    def rec(ago: float, level: str, node: str | None, message: str, **extra: Any) -> dict[str, Any]:
        return make_record(
            level, message, node=node, dataflow="demo", run_id="run-demo", timestamp=t0 - ago, **extra
        )

    return [
        rec(7200, "INFO", "camera", "camera started"),
        rec(7100, "DEBUG", "camera", "frame 1", fields={"seq": 1}),
        rec(
            1800,
            "WARN",
            "planner",
            "slow plan",
            fields={"ms": 250},
            trace_id=TRACE,
            span_id="b7ad6b7169203331",
        ),
        rec(1790, "ERROR", "camera", "no frame", fields={"device": "/dev/video0"}),
        rec(60, "INFO", "planner", "plan ready", fields={"steps": 3, "note": "two words"}),
        rec(30, "FATAL", "controller", "motor overheated", fields={"temp_c": 95}),
        rec(20, "TRACE", "camera", "tick"),
        rec(10, "INFO", None, "node camera exited", source="runtime"),
    ]


@pytest.fixture(scope="module")
def coord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coordinator]:
    runtime = Path(tempfile.mkdtemp(prefix="dxl-"))
    runtime.chmod(0o700)
    folder = tmp_path_factory.mktemp("logs-project")
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = dict(os.environ)
    env.pop("DORADUS_TOKEN_FILE", None)
    env.pop("FORCE_COLOR", None)
    env.update(XDG_RUNTIME_DIR=str(runtime), DORADUS_COORDINATOR=address, NO_COLOR="1")
    log = open(runtime / "coordinator.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*DORADUS, "coordinator", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                headers = api_headers(runtime / "doradus", port)  # written once it listens
                if (
                    httpx.get(f"http://{address}/api/v1/health", headers=headers, timeout=1).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (runtime / "coordinator.log").read_text()
            assert time.monotonic() < deadline, "coordinator did not answer"
            time.sleep(0.1)
        t0 = time.time()
        records = known_records(t0)
        c = Coordinator(env, address, folder, t0, records)
        c.register("demo", "run-demo", ["camera", "planner", "controller"])
        c.report("run-demo", records, status="finished")
        yield c
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(runtime, ignore_errors=True)


def messages_of_json_lines(text: str) -> list[str]:
    return [json.loads(line)["message"] for line in text.splitlines()]


def logs_json(coord: Coordinator, *args: str) -> list[str]:
    ran = coord("logs", "demo", "--output", "json", *args)
    assert ran.returncode == 0, ran.stderr
    return messages_of_json_lines(ran.stdout)


ALL = [
    "camera started",
    "frame 1",
    "slow plan",
    "no frame",
    "plan ready",
    "motor overheated",
    "tick",
    "node camera exited",
]


# ------------------------------------------------------------ formats
def test_json_lines_round_trip_every_record(coord: Coordinator) -> None:
    ran = coord("logs", "demo", "--output", "json")
    assert ran.returncode == 0, ran.stderr
    parsed = [json.loads(line) for line in ran.stdout.splitlines()]
    assert parsed == coord.records


def test_format_is_an_alias_of_output(coord: Coordinator) -> None:
    ran = coord("logs", "demo", "--format", "json", "--tail", "1")
    assert [json.loads(line)["message"] for line in ran.stdout.splitlines()] == ["node camera exited"]


def test_csv_export_parses_back(coord: Coordinator) -> None:
    ran = coord("logs", "demo", "--output", "csv")
    assert ran.returncode == 0, ran.stderr
    reader = csv.DictReader(io.StringIO(ran.stdout))
    assert tuple(reader.fieldnames or ()) == RECORD_KEYS
    rows = list(reader)
    assert [r["message"] for r in rows] == ALL
    assert [json.loads(r["fields"]) for r in rows] == [r["fields"] for r in coord.records]
    assert rows[2]["trace_id"] == TRACE
    assert rows[7]["node"] == ""  # None is an empty cell
    assert [r["level"] for r in rows] == [r["level"] for r in coord.records]


def test_yaml_export_is_a_list(coord: Coordinator) -> None:
    ran = coord("logs", "demo", "--output", "yaml", "--level", "error")
    assert ran.returncode == 0, ran.stderr
    assert yaml.safe_load(ran.stdout) == [coord.records[3], coord.records[5]]
    empty = coord("logs", "demo", "--output", "yaml", "--grep", "nothing-matches-this")
    assert yaml.safe_load(empty.stdout) == []


def test_text_lines_are_aligned_and_plain_when_not_a_tty(coord: Coordinator) -> None:
    ran = coord("logs", "demo")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert len(lines) == len(ALL)
    assert not ANSI.search(ran.stdout)
    # node column as wide as the longest node id of the dataflow (controller)
    assert {line.index(" | ") for line in lines} == {len("2026-11-25T22:09:02.123Z  ERROR ") + 10}
    warn_stamp = iso_timestamp(coord.t0 - 1800)[:23] + "Z"
    assert lines[2] == f"{warn_stamp}  WARN  planner    | slow plan  ms=250 trace={TRACE[:8]}"
    assert lines[4].endswith('| plan ready  steps=3 note="two words"')
    assert lines[7].endswith("  INFO  -          | node camera exited")
    for line in lines:
        assert re.match(
            r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) ", line
        )


def test_text_colour_forced_and_disabled(coord: Coordinator) -> None:
    env = {k: v for k, v in coord.env.items() if k != "NO_COLOR"}
    env["FORCE_COLOR"] = "1"
    coloured = coord("logs", "demo", env=env)
    assert coloured.returncode == 0, coloured.stderr
    lines = coloured.stdout.splitlines()
    assert "\x1b[33mWARN \x1b[0m" in lines[2]
    assert "\x1b[31mERROR\x1b[0m" in lines[3]
    assert "\x1b[1;31mFATAL\x1b[0m" in lines[5]
    assert "\x1b[2mTRACE\x1b[0m" in lines[6]
    assert "\x1b[2mDEBUG\x1b[0m" in lines[1]
    assert not ANSI.search(lines[0])  # INFO: default colour
    plain = coord("logs", "demo", env={**env, "NO_COLOR": "1"}).stdout
    assert ANSI.sub("", coloured.stdout) == plain  # same alignment once colour is removed
    assert not ANSI.search(plain)
    assert not ANSI.search(coord("logs", "demo", "--no-color", env=env).stdout)
    assert not ANSI.search(coord("logs", "demo", "--output", "json", env=env).stdout)


# ------------------------------------------------------------ filters
def test_node_is_repeatable(coord: Coordinator) -> None:
    assert logs_json(coord, "--node", "planner") == ["slow plan", "plan ready"]
    assert logs_json(coord, "--node", "planner", "--node", "controller") == [
        "slow plan",
        "plan ready",
        "motor overheated",
    ]
    assert logs_json(coord, "--node", "nobody") == []


def test_level_is_a_minimum(coord: Coordinator) -> None:
    assert logs_json(coord, "--level", "error") == ["no frame", "motor overheated"]
    assert logs_json(coord, "--level", "warning") == ["slow plan", "no frame", "motor overheated"]
    assert logs_json(coord, "--level", "TRACE") == ALL


def test_filter_is_exact_levels(coord: Coordinator) -> None:
    assert logs_json(coord, "--filter", "warn,error") == ["slow plan", "no frame"]
    assert logs_json(coord, "--filter", "debug, trace") == ["frame 1", "tick"]
    assert logs_json(coord, "--filter", "info", "--level", "warn") == []


def test_grep_searches_message_and_fields(coord: Coordinator) -> None:
    assert logs_json(coord, "--grep", "plan") == ["slow plan", "plan ready"]
    assert logs_json(coord, "--grep", "video0") == ["no frame"]  # only in the fields
    assert logs_json(coord, "--grep", "^(no |tick)") == ["no frame", "tick"]
    assert logs_json(coord, "--grep", "(?i)MOTOR") == ["motor overheated"]


def test_since_and_until_with_durations(coord: Coordinator) -> None:
    assert logs_json(coord, "--since", "1h") == [
        "slow plan",
        "no frame",
        "plan ready",
        "motor overheated",
        "tick",
        "node camera exited",
    ]
    assert logs_json(coord, "--until", "1h") == ["camera started", "frame 1"]
    assert logs_json(coord, "--since", "1d", "--until", "10m") == [
        "camera started",
        "frame 1",
        "slow plan",
        "no frame",
    ]
    assert logs_json(coord, "--since", "5m") == [
        "plan ready",
        "motor overheated",
        "tick",
        "node camera exited",
    ]


def test_since_and_until_with_iso_times(coord: Coordinator) -> None:
    since = iso_timestamp(coord.t0 - 1800)  # inclusive: "slow plan" is at exactly this time
    until = iso_timestamp(coord.t0 - 30)
    assert logs_json(coord, "--since", since, "--until", until) == [
        "slow plan",
        "no frame",
        "plan ready",
        "motor overheated",
    ]
    offset = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(coord.t0 - 7150))
    assert logs_json(coord, "--until", offset) == ["camera started"]


def test_tail_is_applied_after_the_filters(coord: Coordinator) -> None:
    assert logs_json(coord, "--tail", "2") == ["tick", "node camera exited"]
    assert logs_json(coord, "--node", "camera", "--tail", "2") == ["no frame", "tick"]
    assert logs_json(coord, "--tail", "0") == []
    assert logs_json(coord, "--tail", "100") == ALL
    assert logs_json(coord, "--level", "error", "--tail", "5") == ["no frame", "motor overheated"]


def test_filters_combine(coord: Coordinator) -> None:
    assert logs_json(coord, "--node", "camera", "--level", "debug", "--grep", "frame", "--since", "1d") == [
        "frame 1",
        "no frame",
    ]


# ------------------------------------------------------------ group-by
def test_group_by_node_as_json_lines_and_text(coord: Coordinator) -> None:
    ran = coord("logs", "demo", "--group-by", "node", "--output", "json")
    assert ran.returncode == 0, ran.stderr
    rows = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [(r["key"], r["count"], r["sample"]) for r in rows] == [
        ("-", 1, "node camera exited"),
        ("camera", 4, "tick"),
        ("controller", 1, "motor overheated"),
        ("planner", 2, "plan ready"),
    ]
    camera = rows[1]
    assert (camera["first"], camera["last"]) == (coord.records[0]["timestamp"], coord.records[6]["timestamp"])
    text = coord("logs", "demo", "--group-by", "node").stdout.splitlines()
    assert text[0].split() == ["NODE", "COUNT", "FIRST", "LAST", "SAMPLE"]
    assert text[2].split()[:2] == ["camera", "4"]
    assert text[2].endswith("tick")


def test_group_by_level_as_yaml_with_filters(coord: Coordinator) -> None:
    ran = coord("logs", "demo", "--group-by", "level", "--output", "yaml", "--node", "camera")
    rows = yaml.safe_load(ran.stdout)
    assert [(r["key"], r["count"]) for r in rows] == [("TRACE", 1), ("DEBUG", 1), ("INFO", 1), ("ERROR", 1)]


def test_group_by_minute_as_csv(coord: Coordinator) -> None:
    ran = coord("logs", "demo", "--group-by", "minute", "--output", "csv")
    assert ran.returncode == 0, ran.stderr
    rows = list(csv.DictReader(io.StringIO(ran.stdout)))
    expected = Counter(
        time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(coord.t0 - ago))
        for ago in (7200, 7100, 1800, 1790, 60, 30, 20, 10)
    )
    assert {r["key"]: int(r["count"]) for r in rows} == expected
    assert [r["key"] for r in rows] == sorted(expected)
    assert sum(int(r["count"]) for r in rows) == len(ALL)


def test_group_by_with_follow_is_refused(coord: Coordinator) -> None:
    ran = coord("logs", "demo", "--group-by", "node", "--follow")
    assert ran.returncode == 2
    assert "--group-by" in ran.stderr


# ------------------------------------------------------------ bad flags
@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--level", "loud"], "--level"),
        (["--filter", "warn,nope"], "--filter"),
        (["--grep", "(unclosed"], "--grep"),
        (["--since", "yesterday"], "--since"),
        (["--until", "12"], "--until"),
        (["--group-by", "color"], "--group-by"),
        (["--output", "table"], "--output"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(coord: Coordinator, args: list[str], flag: str) -> None:
    ran = coord("logs", "demo", *args)
    assert ran.returncode == 2
    assert flag in ran.stderr
    assert ran.stdout == ""


def test_unknown_dataflow_exits_2(coord: Coordinator) -> None:
    ran = coord("logs", "nope", "--retries", "0")
    assert ran.returncode == 2
    assert "nope" in ran.stderr


def test_api_rejects_bad_filters_with_error_and_fix(coord: Coordinator) -> None:
    url = f"{coord.api}/dataflows/demo/logs"
    for params, word in (({"level": "loud"}, "level"), ({"grep": "("}, "grep"), ({"filter": "x"}, "filter")):
        response = httpx.get(url, params=params, headers=coord.headers, timeout=10)
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert word in detail["error"]
        assert detail["fix"]
    both = [("node", "planner"), ("node", "controller"), ("level", "warn")]
    ok = httpx.get(url, params=both, headers=coord.headers, timeout=10)
    assert [r["message"] for r in ok.json()] == ["slow plan", "motor overheated"]
    since = httpx.get(
        url, params={"since": coord.t0 - 25, "until": coord.t0 - 15}, headers=coord.headers, timeout=10
    )
    assert [r["message"] for r in since.json()] == ["tick"]


# ------------------------------------------------------------ follow
class Reader:
    """Lines of a process's stdout, read on a thread so a test can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout: float = 30) -> str | None:
        return self.lines.get(timeout=timeout)


def live_record(message: str, level: str, node: str = "camera") -> dict[str, Any]:
    return make_record(level, message, node=node, dataflow="live", run_id="run-live")


def start_follow(coord: Coordinator, *args: str) -> tuple[subprocess.Popen[str], Reader]:
    proc = subprocess.Popen(
        [*DORADUS, "logs", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=coord.env,
        cwd=coord.folder,
    )
    return proc, Reader(proc)


def test_follow_streams_new_matching_records_and_ends_with_the_dataflow(coord: Coordinator) -> None:
    coord.register("live", "run-live", ["camera", "planner"])
    coord.report("run-live", [live_record("old info", "INFO"), live_record("old warning", "WARN")])
    proc, reader = start_follow(coord, "live", "--follow", "--output", "json", "--level", "warn")
    try:
        assert json.loads(reader.next() or "")["message"] == "old warning"  # the backlog, filtered
        coord.report(
            "run-live",
            [
                live_record("new info", "INFO"),
                live_record("new error", "ERROR"),
                live_record("planner fatal", "FATAL", node="planner"),
            ],
        )
        assert json.loads(reader.next() or "")["message"] == "new error"
        assert json.loads(reader.next() or "")["message"] == "planner fatal"
        coord.report("run-live", [live_record("last words", "ERROR")], status="finished")
        assert json.loads(reader.next() or "")["message"] == "last words"
        assert reader.next() is None
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        assert proc.stdout is not None
        proc.stdout.close()


def test_follow_text_with_node_and_grep_and_ctrl_c_exits_0(coord: Coordinator) -> None:
    coord.register("live2", "run-live2", ["camera", "planner"])
    coord.report("run-live2", [live_record("frame 1", "INFO"), live_record("frame 2", "INFO")])
    proc, reader = start_follow(
        coord, "live2", "-f", "--tail", "1", "--node", "planner", "--node", "camera", "--grep", "frame"
    )
    try:
        assert (reader.next() or "").endswith("  INFO  camera  | frame 2")  # --tail 1 of the backlog
        coord.report(
            "run-live2",
            [live_record("noise", "INFO"), live_record("frame 9", "WARN", node="planner")],
        )
        assert (reader.next() or "").endswith("  WARN  planner | frame 9")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        coord.report("run-live2", [], status="finished")
        assert proc.stderr is not None
        proc.stderr.close()
        assert proc.stdout is not None
        proc.stdout.close()


def test_follow_csv_prints_the_header_first(coord: Coordinator) -> None:
    coord.register("live3", "run-live3", ["camera"])
    proc, reader = start_follow(coord, "live3", "--follow", "--output", "csv")
    try:
        assert reader.next() == ",".join(RECORD_KEYS)
        coord.report("run-live3", [live_record("a, quoted", "INFO")], status="finished")
        rows = []
        while (line := reader.next()) is not None:
            rows.append(line)
        assert proc.wait(timeout=30) == 0
        parsed = list(csv.DictReader(io.StringIO("\n".join([",".join(RECORD_KEYS), *rows]))))
        assert [r["message"] for r in parsed] == ["a, quoted"]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        assert proc.stdout is not None
        proc.stdout.close()


# ------------------------------------------------------------ on disk
def write_run_folder(folder: Path) -> list[dict[str, Any]]:
    records = [
        make_record(
            "ERROR" if k % 10 == 7 else "INFO",
            f"line {k:02d}",
            node="talker" if k % 2 else "listener",
            timestamp=1_800_000_000 + k,
            fields={"k": k, "pad": "x" * 40},
        )
        for k in range(40)
    ]
    with LogStore(folder, max_bytes=2048, backups=20) as store:
        for record in records:
            store.write(record)
    return records


def test_run_folder_on_disk_without_a_coordinator(tmp_path: Path, coord: Coordinator) -> None:
    run = tmp_path / "out" / "01JRUN"
    records = write_run_folder(run)
    assert (run / "logs.1.jsonl").exists()  # rotated
    assert (run / "logs.2.jsonl").exists()
    env = {**coord.env, "DORADUS_COORDINATOR": f"127.0.0.1:{free_port()}"}  # nothing listens there

    every = coord("logs", str(run), "--output", "json", env=env, cwd=tmp_path)
    assert every.returncode == 0, every.stderr
    assert [json.loads(line) for line in every.stdout.splitlines()] == records  # oldest first, all files

    by_id = coord("logs", "01JRUN", "--output", "json", "--level", "error", env=env, cwd=tmp_path)
    assert by_id.returncode == 0, by_id.stderr
    assert messages_of_json_lines(by_id.stdout) == ["line 07", "line 17", "line 27", "line 37"]

    file = coord("logs", str(run / "logs.jsonl"), "--output", "json", "--tail", "3", env=env, cwd=tmp_path)
    assert messages_of_json_lines(file.stdout) == ["line 37", "line 38", "line 39"]

    relative = coord(
        "logs",
        "out/01JRUN",
        "--node",
        "talker",
        "--grep",
        "line [01]",
        "--output",
        "json",
        env=env,
        cwd=tmp_path,
    )
    assert messages_of_json_lines(relative.stdout) == [f"line {k:02d}" for k in range(1, 20, 2)]

    since = iso_timestamp(1_800_000_000 + 35)
    window = coord("logs", "01JRUN", "--since", since, "--output", "csv", env=env, cwd=tmp_path)
    assert [r["message"] for r in csv.DictReader(io.StringIO(window.stdout))] == [
        f"line {k}" for k in range(35, 40)
    ]

    grouped = coord("logs", "01JRUN", "--group-by", "node", "--output", "json", env=env, cwd=tmp_path)
    assert {json.loads(x)["key"]: json.loads(x)["count"] for x in grouped.stdout.splitlines()} == {
        "listener": 20,
        "talker": 20,
    }

    text = coord("logs", "01JRUN", "--filter", "error", env=env, cwd=tmp_path).stdout.splitlines()
    assert text[0] == "2027-01-15T08:00:07.000Z  ERROR talker   | line 07  k=7 pad=" + "x" * 40


def test_without_a_coordinator_the_fix_names_the_run_folder(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.cli.conftest import free_port

    env = {**os.environ, "DORADUS_COORDINATOR": f"127.0.0.1:{free_port()}", "XDG_RUNTIME_DIR": str(tmp_path)}
    ran = subprocess.run(
        [sys.executable, "-m", "doradus.cli", "logs", "01a2-missing", "--retries", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=30,
    )
    assert ran.returncode == 1
    assert "doradus logs <dataflow folder>/out/01a2-missing" in ran.stderr
