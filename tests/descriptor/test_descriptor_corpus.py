"""Every file in ``bad/`` is rejected with the problem its header announces.

Each bad file starts with one or more ``# expect: LINE:COL text`` comments:
the loader must report an error at exactly that line and column of that
file, whose message contains ``text`` and which carries a fix. With
``# expect: LINE:COL text => hint`` the fix must also contain ``hint``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from doradus._dataflow.loader import check_dataflow, load_dataflow
from doradus._dataflow.problems import Problem
from doradus._exceptions import DescriptorError

BAD = Path(__file__).parent / "bad"
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (.+?)(?: => (.+))?$", re.MULTILINE)
BAD_FILES = sorted(BAD.glob("*.yml"))


def expectations(file: Path) -> list[tuple[int, int, str, str]]:
    text = file.read_text(encoding="utf-8")
    return [(int(line), int(col), needle, hint) for line, col, needle, hint in EXPECT.findall(text)]


def test_corpus_is_large_enough() -> None:
    assert len(BAD_FILES) >= 25
    assert all(expectations(file) for file in BAD_FILES), "every bad file needs an `# expect:` header"


@pytest.mark.parametrize("file", BAD_FILES, ids=[file.stem for file in BAD_FILES])
def test_bad_file_is_rejected_at_the_announced_place(file: Path) -> None:
    with pytest.raises(DescriptorError) as caught:
        load_dataflow(file)
    problems: list[Problem] = caught.value.problems
    assert problems, "a DescriptorError must carry its problems"
    assert all(problem.severity == "error" for problem in problems)
    for line, column, needle, hint in expectations(file):
        matching = [p for p in problems if (p.location.line, p.location.column) == (line, column)]
        found = "\n".join(str(p) for p in problems)
        assert matching, f"no problem at {line}:{column}; found:\n{found}"
        problem = next((p for p in matching if needle in p.message), None)
        assert problem is not None, f"no problem at {line}:{column} mentions {needle!r}; found:\n{found}"
        assert problem.location.file == file
        assert problem.fix, f"{problem} has no fix"
        assert hint in problem.fix
        assert str(problem).startswith(f"{file}:{line}:{column}: error: ")
        assert f"\n  fix: {problem.fix}" in str(problem)


@pytest.mark.parametrize("file", BAD_FILES, ids=[file.stem for file in BAD_FILES])
def test_check_dataflow_reports_the_same_errors_without_raising(file: Path) -> None:
    dataflow, problems = check_dataflow(file)
    assert dataflow is None
    with pytest.raises(DescriptorError) as caught:
        load_dataflow(file)
    assert [p for p in problems if p.is_error] == caught.value.problems


def test_problems_come_in_file_order() -> None:
    dataflow, problems = check_dataflow(BAD / "many_problems.yml")
    assert dataflow is None
    places = [(p.location.line, p.location.column) for p in problems]
    assert places == sorted(places)
    assert len([p for p in problems if p.is_error]) == 3
