"""The descriptor's parts: sources, quantities, YAML positions, problems, files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doradus._dataflow.loader import check_dataflow, load_dataflow
from doradus._dataflow.model import Location, LogSource, NodeSource, TimerSource
from doradus._dataflow.problems import Problem, closest, sort_problems
from doradus._dataflow.sources import SourceError, parse_source
from doradus._dataflow.yaml_positions import parse_yaml
from doradus._exceptions import DescriptorError
from doradus._quantities import parse_byte_size, parse_duration

NOOP = (Path(__file__).parent / "nodes" / "noop.py").resolve()


def write(folder: Path, text: str, name: str = "dataflow.yml") -> Path:
    file = folder / name
    file.write_text(text, encoding="utf-8")
    return file


def only_error(file: Path) -> Problem:
    with pytest.raises(DescriptorError) as caught:
        load_dataflow(file)
    assert len(caught.value.problems) == 1, caught.value.problems
    problem: Problem = caught.value.problems[0]
    return problem


# --- sources -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dora/timer/secs/1", TimerSource("dora/timer/secs/1", 1_000_000_000)),
        ("dora/timer/nanos/7", TimerSource("dora/timer/nanos/7", 7)),
        ("dora/timer/hz/3", TimerSource("dora/timer/hz/3", 333_333_333)),
        ("dora/timer/hz/2.5", TimerSource("dora/timer/hz/2.5", 400_000_000)),
        ("dora/logs/warn", LogSource("dora/logs/warn", "warn", None)),
        ("a/b/c/d", NodeSource("a", "b/c/d")),
    ],
)
def test_parse_source_reads_valid_sources(text: str, expected: object) -> None:
    assert parse_source(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("nodeonly", "must be `node/output`"),
        ("/out", "both parts non-empty"),
        ("node/", "both parts non-empty"),
        ("dora/timer/millis", "must be `dora/timer/<unit>/<number>`"),
        ("dora/timer/millis/5/6", "must be `dora/timer/<unit>/<number>`"),
        ("dora/timer/millis/-5", "whole number greater than 0"),
        ("dora/timer/millis/" + "9" * 31, "too long"),
        ("dora/timer/secs/" + "9" * 25, "too long"),
        ("dora/timer/hz/0", "greater than 0"),
        ("dora/timer/hz/inf", "greater than 0"),
        ("dora/timer/hz/1e300", "above 1 GHz"),
        ("dora/timer/hz/1e-300", "too low"),
        ("dora/timer/seconds/1", "unknown timer unit"),
        ("dora/logs/info/a/b", "too many parts"),
        ("dora/logs/info/", "empty node id"),
        ("dora/metrics", "unknown built-in source"),
    ],
)
def test_parse_source_explains_bad_sources(text: str, needle: str) -> None:
    error = parse_source(text)
    assert isinstance(error, SourceError)
    assert needle in error.message
    assert error.fix


def test_timer_unit_aliases_suggest_the_dora_unit() -> None:
    error = parse_source("dora/timer/seconds/1")
    assert isinstance(error, SourceError)
    assert error.fix.startswith("did you mean `secs`?")


# --- quantities ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("250us", 250e-6),
        ("3", 3.0),
        (" 1.5 s ", 1.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 parsecs", "-1s", "1e3s", "٣s", "1" * 40])
def test_parse_duration_rejects(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256MB", 256_000_000),
        ("1GiB", 1 << 30),
        ("512KB", 512_000),
        ("512kib", 512 << 10),
        ("1.5MiB", 1_572_864),
    ],
)
def test_parse_byte_size(text: str, size: int) -> None:
    assert parse_byte_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "256 megs", "-1MB", "1" * 40])
def test_parse_byte_size_rejects(text: str) -> None:
    assert parse_byte_size(text) is None


# --- YAML positions ----------------------------------------------------------------


def test_positions_of_keys_and_values() -> None:
    doc, problems = parse_yaml("nodes:\n  - id: a\n    inputs: {x: b/c}\n", Path("f.yml"))
    assert problems == []
    assert doc is not None
    assert (
        doc.positions.key_at(("nodes", 0, "inputs")).line,
        doc.positions.key_at(("nodes", 0, "inputs")).column,
    ) == (
        3,
        5,
    )
    value = doc.positions.value_at(("nodes", 0, "inputs", "x"))
    assert (value.line, value.column) == (3, 17)
    missing = doc.positions.value_at(("nodes", 0, "inputs", "nope", "deeper"))
    assert (missing.line, missing.column) == (3, 13)


def test_duplicate_keys_are_reported_at_the_second() -> None:
    doc, problems = parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\n", Path("f.yml"))
    assert doc is not None
    assert doc.value == {"a": 1, "b": {"c": 2}}
    assert [(p.location.line, p.location.column) for p in problems] == [(4, 3)]
    assert "duplicate key `c` (first at line 3, column 3)" in problems[0].message


def test_merge_keys_do_not_count_as_duplicates() -> None:
    doc, problems = parse_yaml("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n", Path("f.yml"))
    assert problems == []
    assert doc is not None
    assert doc.value["use"] == {"x": 1, "y": 3}


def test_aliases_share_values_without_walking_them_again() -> None:
    # a billion-laughs shape: nine levels of ten aliases each would be 10**9 values
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    started = time.perf_counter()
    doc, problems = parse_yaml("\n".join(lines), Path("f.yml"))
    assert time.perf_counter() - started < 1.0
    assert problems == []
    assert doc is not None


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    doc, problems = parse_yaml("a: " + "[" * 500 + "]" * 500, Path("f.yml"))
    assert doc is not None
    assert any("nests more than" in p.message for p in problems)


def test_yaml_syntax_error_gives_position_and_fix() -> None:
    doc, problems = parse_yaml("a: [1, 2\nb: 3\n", Path("f.yml"))
    assert doc is None
    (problem,) = problems
    assert problem.message.startswith("invalid YAML")
    assert (problem.location.line, problem.location.column) == (2, 2)
    assert problem.fix


def test_second_document_is_rejected() -> None:
    doc, problems = parse_yaml("a: 1\n---\nb: 2\n", Path("f.yml"))
    assert doc is None
    assert "one document" in (problems[0].fix or "")


# --- problems ---------------------------------------------------------------------


def test_problem_renders_like_a_compiler() -> None:
    problem = Problem(Location(Path("df.yml"), 7, 15), "unknown node `camra`", "did you mean `camera`?")
    assert str(problem) == "df.yml:7:15: error: unknown node `camra`\n  fix: did you mean `camera`?"
    assert problem.is_error


def test_problem_without_fix_is_one_line() -> None:
    problem = Problem(Location(Path("df.yml"), 1, 2), "old syntax", None, "warning")
    assert str(problem) == "df.yml:1:2: warning: old syntax"
    assert not problem.is_error


def test_sort_problems_and_closest() -> None:
    late, early = (Problem(Location(Path("f"), line, 1), str(line)) for line in (9, 2))
    assert sort_problems([late, early]) == [early, late]
    assert closest("camra", ["camera", "viewer"]) == "camera"
    assert closest("zzz", ["camera"]) is None


# --- files -------------------------------------------------------------------------


def test_missing_file_is_a_problem_at_1_1(tmp_path: Path) -> None:
    problem = only_error(tmp_path / "nope.yml")
    assert (problem.location.file, problem.location.line, problem.location.column) == (
        tmp_path / "nope.yml",
        1,
        1,
    )
    assert "no dataflow file" in problem.message


def test_folder_is_a_problem_at_1_1(tmp_path: Path) -> None:
    problem = only_error(tmp_path)
    assert (problem.location.line, problem.location.column) == (1, 1)
    assert "is a folder" in problem.message


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    file = tmp_path / "df.yml"
    file.write_bytes(b"nodes:\n  - id: caf\xe9\n")
    problem = only_error(file)
    assert (problem.location.line, problem.location.column) == (2, 12)
    assert "UTF-8" in problem.message


def test_control_character_is_located(tmp_path: Path) -> None:
    problem = only_error(write(tmp_path, "nodes:\n  - id: a\x07b\n"))
    assert (problem.location.line, problem.location.column) == (2, 10)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    file = tmp_path / "df.yml"
    file.write_bytes(b"\xef\xbb\xbfnodes:\n  - id: a\n    path: dynamic\n")
    assert load_dataflow(file).nodes[0].id == "a"


def test_relative_path_keeps_the_name_given_in_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "nodes:\n  - id: a\n    path: dynamic\n    colour: red\n")
    monkeypatch.chdir(tmp_path)
    problem = only_error(Path("dataflow.yml"))
    assert str(problem).startswith("dataflow.yml:4:5: error: unknown node key `colour`")


def test_dataflow_path_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "nodes:\n  - id: a\n    path: dynamic\n")
    monkeypatch.chdir(tmp_path)
    dataflow = load_dataflow("dataflow.yml")
    assert dataflow.path == tmp_path / "dataflow.yml"
    assert dataflow.path.is_absolute()


def test_descriptor_error_carries_errors_only(tmp_path: Path) -> None:
    file = write(
        tmp_path, "_unstable_deploy: {machine: a}\nnodes:\n  - id: a\n    path: dynamic\n    colour: red\n"
    )
    dataflow, problems = check_dataflow(file)
    assert dataflow is None
    assert [p.severity for p in problems] == ["warning", "error"]
    with pytest.raises(DescriptorError) as caught:
        load_dataflow(file)
    assert [p.severity for p in caught.value.problems] == ["error"]
    assert str(caught.value).startswith(f"{file}:5:5: error: unknown node key `colour`")


def test_missing_python_file_with_build_is_a_warning(tmp_path: Path) -> None:
    file = write(tmp_path, "nodes:\n  - id: a\n    path: gen.py\n    build: python make.py\n")
    dataflow = load_dataflow(file)
    assert dataflow.nodes[0].executable == str(tmp_path / "gen.py")
    (warning,) = dataflow.warnings
    assert (warning.location.line, warning.location.column, warning.severity) == (3, 11, "warning")


def test_bare_name_found_in_the_dataflow_folder_first(tmp_path: Path) -> None:
    tool = tmp_path / "python"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    node = load_dataflow(write(tmp_path, "nodes:\n  - id: a\n    path: python\n")).nodes[0]
    assert (node.kind, node.executable) == ("executable", str(tool))


def test_home_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "node.py").write_text("")
    node = load_dataflow(write(tmp_path, "nodes:\n  - id: a\n    path: ~/node.py\n")).nodes[0]
    assert node.executable == str(tmp_path / "node.py")


def test_args_list_and_node_env_override(tmp_path: Path) -> None:
    text = f"env: {{A: g, B: g}}\nnodes:\n  - id: a\n    path: {NOOP}\n"
    text += "    args: [--x, 'a b']\n    env: {B: n}\n"
    node = load_dataflow(write(tmp_path, text)).nodes[0]
    assert node.args == ("--x", "a b")
    assert node.env == {"A": "g", "B": "n"}


def test_every_wrong_type_names_the_expected_type(tmp_path: Path) -> None:
    text = "nodes:\n  - id: a\n    path: dynamic\n"
    text += "    outputs: {x: 1}\n    cpu_affinity: 3\n    max_restarts: yes\n"
    dataflow, problems = check_dataflow(write(tmp_path, text))
    assert dataflow is None
    messages = [p.message for p in problems]
    assert messages == [
        "`outputs` must be a list, got a mapping",
        "`cpu_affinity` must be a list, got the number `3`",
        "`max_restarts` must be a whole number ≥ 0, got `true`",
    ]


# --- speed and weight ---------------------------------------------------------------


# How long loading takes is measured by `make bench-descriptor` (benchmarks/descriptor.py), not here.


def test_importing_the_descriptor_pulls_in_nothing_heavy() -> None:
    # Load the descriptor modules without running doradus/__init__.py (which
    # imports the node runtime): this checks the descriptor's own imports.
    src = Path(__import__("doradus").__file__).parent
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('doradus'); pkg.__path__ = [{str(src)!r}]; sys.modules['doradus'] = pkg\n"
        "import doradus._dataflow.loader\n"
        "heavy = [m for m in ('pyarrow', 'numpy', 'rich', 'pydantic', 'click') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert result.stdout.strip() == ""
