"""``doradus init`` and ``doradus new`` through the real CLI: flags, a pseudo-terminal, templates."""

from __future__ import annotations

import os
import py_compile
import re
import select
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from tests.cli.conftest import DORADUS, Control

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def assert_runs_chain(control: Control, folder: str, first: str, last: str) -> None:
    """The dataflow in ``folder`` passes `check` and runs to completion, the last node printing 1..10."""
    checked = control("check", f"{folder}/dataflow.yaml")
    assert checked.returncode == 0, checked.stderr
    ran = control("run", f"{folder}/dataflow.yaml", "--stop-after", "20s", timeout=40)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    received = [int(m) for m in re.findall(rf"^{re.escape(last)} *\| received (\d+)$", ran.stdout, re.M)]
    assert received == list(range(1, 11))
    assert re.search(rf"^{re.escape(first)} *\| sent 10 values$", ran.stdout, re.M)


def test_init_with_flags_writes_a_runnable_chain(control: Control) -> None:
    made = control(
        "init", "--yes", "--name", "demo", "--node", "camera", "--node", "filter", "--node", "sink",
        "--log-level", "debug", "--output-dir", "flow",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "Configuration saved! Use `doradus run flow/dataflow.yaml` to begin." in made.stdout
    folder = control.folder / "flow"
    assert sorted(p.name for p in folder.iterdir()) == ["camera.py", "dataflow.yaml", "filter.py", "sink.py"]
    data = yaml.safe_load((folder / "dataflow.yaml").read_text())
    assert data["env"] == {"DORADUS_LOG_LEVEL": "DEBUG"}
    assert [n["id"] for n in data["nodes"]] == ["camera", "filter", "sink"]
    assert data["nodes"][0]["inputs"] == {"tick": "dora/timer/millis/100"}
    assert data["nodes"][1]["inputs"] == {"data": "camera/data"}
    assert data["nodes"][2]["inputs"] == {"data": "filter/data"}
    assert "from doradus import" in (folder / "camera.py").read_text()
    assert_runs_chain(control, "flow", "camera", "sink")


def test_init_defaults_without_a_terminal(control: Control) -> None:
    made = control("init")  # stdin is not a TTY: no questions, the defaults
    assert made.returncode == 0, made.stderr
    data = yaml.safe_load((control.folder / "dataflow.yaml").read_text())
    assert [n["id"] for n in data["nodes"]] == ["sender", "receiver"]
    assert data["env"]["DORADUS_LOG_LEVEL"] == "INFO"
    assert "Dataflow `project`" in (control.folder / "dataflow.yaml").read_text()  # the folder's name


def test_init_refuses_to_overwrite_but_keeps_user_node_files(control: Control) -> None:
    assert control("init", "--yes").returncode == 0
    again = control("init", "--yes")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert "Suggested fix: pass --force" in again.stderr
    sender = control.folder / "sender.py"
    sender.write_text("# mine\n")
    forced = control("init", "--yes", "--force", "--node", "sender", "--node", "other")
    assert forced.returncode == 0, forced.stderr
    assert sender.read_text() != "# mine\n"  # --force overwrites node files too


def test_init_keeps_existing_node_files_without_force(control: Control) -> None:
    (control.folder / "receiver.py").write_text("# mine\n")
    made = control("init", "--yes")
    assert made.returncode == 0
    assert (control.folder / "receiver.py").read_text() == "# mine\n"
    assert "kept the existing" in made.stderr


@pytest.mark.parametrize(
    ("nodes", "why"),
    [
        (["a/b"], "is not a node id"),
        (["dora"], "reserved"),
        (["x", "x"], "unique"),
        (["has space"], "not a node id"),
    ],
)
def test_init_rejects_invalid_node_ids(control: Control, nodes: list[str], why: str) -> None:
    args = [arg for node in nodes for arg in ("--node", node)]
    made = control("init", "--yes", *args)
    assert made.returncode == 2
    assert why in made.stderr
    assert not (control.folder / "dataflow.yaml").exists()


class Terminal:
    """A child process on a pseudo-terminal: read until a prompt appears, then answer."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env)
        os.close(slave)
        self.seen = ""
        self.raw = ""

    def expect(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in ANSI.sub("", self.seen):
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}; got:\n{self.seen}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                assert chunk, f"the process ended before {text!r}; got:\n{self.seen}"
                self.seen += chunk.decode(errors="replace")
                self.raw += chunk.decode(errors="replace")
        # What follows the prompt is looked for in what comes next.
        cleaned = ANSI.sub("", self.seen)
        self.seen = cleaned[cleaned.index(text) + len(text) :]

    def answer(self, prompt: str, reply: str) -> None:
        self.expect(prompt)
        os.write(self.master, reply.encode() + b"\r")

    def finish(self, timeout: float = 20) -> tuple[int, str]:
        rest = self.seen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                rest += chunk.decode(errors="replace")
            elif self.proc.poll() is not None:
                break
        os.close(self.master)
        return self.proc.wait(timeout=timeout), ANSI.sub("", rest)


def test_init_wizard_in_a_terminal(control: Control) -> None:
    term = Terminal([*DORADUS, "init"], control.folder, {**control.env, "TERM": "dumb"})
    term.expect("Welcome to Doradus! Let's set up your dataflow.")
    term.answer("Name your dataflow [project]:", "wizard-demo")
    term.expect("local")
    term.answer("Select a runtime environment", "")
    term.answer("Add a node (leave empty to finish):", "source")
    term.answer("Add another node (leave empty to finish):", "bad/id")
    term.expect("is not a node id")
    term.answer("Add another node (leave empty to finish):", "relay")
    term.answer("Add another node (leave empty to finish):", "dora")
    term.expect("reserved")
    term.answer("Add another node (leave empty to finish):", "printer")
    term.answer("Add another node (leave empty to finish):", "")
    term.answer("Configure logging level [INFO]:", "")
    term.answer("Save configuration as `dataflow.yaml`? [Y/n]:", "")
    code, rest = term.finish()
    assert code == 0, rest
    assert "Configuration saved! Use `doradus run dataflow.yaml` to begin." in rest
    text = (control.folder / "dataflow.yaml").read_text()
    assert "Dataflow `wizard-demo`" in text
    data = yaml.safe_load(text)
    assert [n["id"] for n in data["nodes"]] == ["source", "relay", "printer"]
    assert data["env"]["DORADUS_LOG_LEVEL"] == "INFO"
    assert_runs_chain(control, ".", "source", "printer")


def test_init_wizard_defaults_and_declining_to_save(control: Control) -> None:
    term = Terminal([*DORADUS, "init"], control.folder, {**control.env, "TERM": "dumb"})
    term.answer("Name your dataflow [project]:", "")
    term.answer("Select a runtime environment", "")
    term.answer("Add a node (leave empty to finish):", "")
    term.expect("using `sender` and `receiver`")
    term.answer("Configure logging level [INFO]:", "loud")
    term.expect("is not a level")
    term.answer("Configure logging level [INFO]:", "warn")
    term.answer("Save configuration as `dataflow.yaml`? [Y/n]:", "n")
    code, rest = term.finish()
    assert code == 0, rest
    assert "Nothing saved." in rest
    assert "\x1b[" not in term.raw  # NO_COLOR is set: no colour even on a terminal
    assert list(control.folder.iterdir()) == []


def test_new_node_writes_a_file_that_compiles(control: Control) -> None:
    made = control("new", "node", "filter", "--dir", "nodes")
    assert made.returncode == 0, made.stderr
    path = control.folder / "nodes" / "filter.py"
    py_compile.compile(str(path), doraise=True)
    assert "from doradus import" in path.read_text()
    again = control("new", "node", "filter", "--dir", "nodes")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    bad = control("new", "node", "no/slash")
    assert bad.returncode == 2
    assert not (control.folder / "no").exists()


def test_new_dataflow_makes_a_folder_that_checks(control: Control) -> None:
    made = control("new", "dataflow", "robot")
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (control.folder / "robot").iterdir()) == [
        "dataflow.yaml", "receiver.py", "sender.py",
    ]  # fmt: skip
    assert control("check", "robot/dataflow.yaml").returncode == 0
    assert control("new", "dataflow", "robot").returncode == 2  # not empty any more
    bad_name = control("new", "dataflow", "my robot")
    assert bad_name.returncode == 2
    assert "not a dataflow name" in bad_name.stderr
