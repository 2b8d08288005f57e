"""`doradus run` warns about every setting it does not apply yet, as `doradus check` does."""

from __future__ import annotations

from tests.descriptor.test_not_applied import EVERY_KEY, expected_warnings


def test_run_prints_each_not_applied_warning(dataflow, tmp_path):
    # the file's nodes do nothing (`ticker` hosts it as an operator); `typist` is dynamic and
    # never comes, hence --stop-after
    text = EVERY_KEY.read_text().replace("../nodes/noop.py", "noop.py")
    noop = "class Operator:\n    def on_event(self, event, send_output):\n        return 0\n"
    ran = dataflow({"dataflow.yml": text, "noop.py": noop}, "--stop-after", "1s")
    assert ran.returncode == 0, ran.output
    file = tmp_path / "dataflow.yml"
    shown = [line for line in ran.stderr.splitlines() if ": warning: " in line]
    assert shown == [f"{file}:{line}:{col}: warning: {message}" for line, col, message in expected_warnings()]
