"""Settings Doradus checks but does not apply yet become warnings at their key (`NOT_APPLIED`).

``not_applied/every_key.yml`` gives each of them once; its ``# warns: LINE:COL message``
lines are the warnings expected, in file order. `doradus check` and `doradus run` print the
same (tests/cli/test_check_output.py, tests/runtime/test_not_applied_run.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from doradus._dataflow.loader import check_dataflow, load_dataflow
from doradus._dataflow.model import NOT_APPLIED

EVERY_KEY = Path(__file__).parent / "not_applied" / "every_key.yml"
WARNS = re.compile(r"^# warns: (\d+):(\d+) (.+)$", re.MULTILINE)


def expected_warnings(file: Path = EVERY_KEY) -> list[tuple[int, int, str]]:
    """The ``# warns:`` lines of ``file``: (line, column, message)."""
    return [(int(line), int(col), text) for line, col, text in WARNS.findall(file.read_text())]


def write(folder: Path, text: str) -> Path:
    file = folder / "dataflow.yml"
    file.write_text(text)
    (folder / "node.py").write_text("")
    return file


def test_every_setting_warns_once_at_its_key() -> None:
    dataflow = load_dataflow(EVERY_KEY)
    found = [(p.location.line, p.location.column, p.message) for p in dataflow.not_applied]
    assert found == expected_warnings()
    assert all(p.severity == "warning" and p.location.file == EVERY_KEY for p in dataflow.not_applied)
    assert all(str(p).startswith(f"{EVERY_KEY}:") for p in dataflow.not_applied)


def test_the_file_exercises_every_entry_of_the_list() -> None:
    messages = [message for _line, _col, message in expected_warnings()]
    for name, entry in NOT_APPLIED.items():
        shown = [m for m in messages if f"`{entry.key}" in m and entry.instead in m and entry.case in m]
        assert shown, f"no warning in {EVERY_KEY.name} for {name!r}"
        assert all("is not applied yet" in m for m in shown)


def test_the_file_is_valid_and_its_problems_are_apart() -> None:
    # the file is right: what is not applied yet is no problem of the file
    dataflow, problems = check_dataflow(EVERY_KEY)
    assert dataflow is not None
    assert problems == []
    assert dataflow.warnings == ()


def test_values_doradus_applies_anyway_do_not_warn(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        """
strict_types: false
debug: {enable_debug_inspection: false}
nodes:
  - id: a
    path: node.py
    outputs: [out, said]
    send_stdout_as: said
    restart_policy: never
  - id: b
    path: node.py
    inputs:
      x: {source: a/out, queue_policy: drop_oldest, queue_size: 3}
      said: a/said
""",
    )
    assert load_dataflow(file).not_applied == ()


def test_operator_and_custom_forms_are_found_where_written(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        """
nodes:
  - id: runtime
    deploy: {machine: robot}
    operators:
      - id: op
        python: node.py
        inputs:
          tick: {source: dora/timer/millis/10, input_timeout: 1}
        outputs: [said]
        send_stdout_as: said
  - id: old
    custom:
      source: node.py
      inputs:
        said: {source: runtime/op/said, queue_policy: backpressure}
""",
    )
    found = [(p.location.line, p.location.column, p.message) for p in load_dataflow(file).not_applied]
    assert found == [
        (
            9,
            48,
            "input `op/tick` of node `runtime`: `input_timeout: 1` is not applied yet on an operator's "
            "input; the operator's input waits for messages without a deadline",
        ),
        (
            11,
            9,
            "node `runtime`: `send_stdout_as: said` is not applied yet across machines; only readers "
            "on the node's own machine get its stdout lines (not input `said` of node `old` on the "
            "default machine)",
        ),
        (
            16,
            41,
            "input `said` of node `old`: `queue_policy: backpressure` is not applied yet on this edge's "
            "backend; drop_oldest is used: a full queue drops its oldest message (the edge from "
            "`runtime/op/said` travels on `zenoh`, which has no way back for the receiver's credits; "
            "`shm` and `tcp` apply it: give node `runtime` `communication: {remote: tcp}`)",
        ),
    ]


def test_backpressure_is_applied_on_shm_tcp_and_timers_and_its_timeout_read(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        """
nodes:
  - id: a
    path: node.py
    outputs: [out]
  - id: b
    path: node.py
    communication: tcp
    outputs: [out]
  - id: c
    path: node.py
    inputs:
      near: {source: a/out, queue_policy: backpressure, backpressure_timeout: 250ms}
      wired: {source: b/out, queue_policy: backpressure}
      tick: {source: dora/timer/millis/10, queue_policy: backpressure}
""",
    )
    flow = load_dataflow(file)
    assert flow.not_applied == ()
    inputs = flow.node("c").inputs
    assert [inputs[i].backpressure_timeout for i in ("near", "wired")] == [0.25, 5.0]


def test_backpressure_timeout_without_backpressure_is_a_warning(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        """
nodes:
  - id: a
    path: node.py
    outputs: [out]
  - id: c
    path: node.py
    inputs:
      x: {source: a/out, backpressure_timeout: 2}
""",
    )
    dataflow, problems = check_dataflow(file)
    assert dataflow is not None
    assert [(p.severity, p.location.line, p.message) for p in problems] == [
        (
            "warning",
            9,
            "`backpressure_timeout` has no effect: input `x` drops its oldest message when its queue is "
            "full (queue_policy: drop_oldest)",
        )
    ]
