"""``doradus tui`` before the screen: clear errors (cause and fix) when it cannot start."""

from __future__ import annotations

import subprocess
import sys

from tests.cli.conftest import DORADUS, Control, free_port
from tests.tui.conftest import Running

WITHOUT_TEXTUAL = """
import sys
sys.modules["textual"] = None  # as if `doradus[tui]` were not installed
sys.argv = ["doradus", "tui"]
from doradus.cli import main
main()
"""


def test_no_coordinator_says_so_and_how_to_start_one(control: Control) -> None:
    ran = control("tui", "--coordinator", f"127.0.0.1:{free_port()}", "--retries", "0")
    assert ran.returncode == 1
    assert "No coordinator at 127.0.0.1:" in ran.stderr
    assert "Suggested fix: start a coordinator with `doradus up`" in ran.stderr


def test_missing_textual_names_the_extra_to_install(control: Control) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TEXTUAL], capture_output=True, text=True, env=control.env, timeout=60
    )
    assert done.returncode == 1
    assert "doradus tui needs Textual, which is not installed" in done.stderr
    assert "Suggested fix: pip install 'doradus[tui]'" in done.stderr


def test_a_bad_column_or_refresh_is_a_usage_error(control: Control) -> None:
    ran = control("tui", "--columns", "node,erors", "--retries", "0")
    assert ran.returncode == 2
    assert "--columns: no column `erors`" in ran.stderr
    assert "did you mean `errors`?" in ran.stderr
    ran = control("tui", "--refresh", "0.01", "--retries", "0")
    assert ran.returncode == 2
    assert "is not a refresh interval" in ran.stderr


def test_an_unknown_dataflow_and_a_missing_terminal_are_refused(running: Running) -> None:
    ran = running.control("tui", "--dataflow", "no-such-flow", "--retries", "0")
    assert ran.returncode == 2
    assert "no-such-flow" in ran.stderr
    assert "Suggested fix:" in ran.stderr
    # Everything is right but stdin and stdout are pipes, not a terminal.
    ran = running.control("tui", "--dataflow", "tui-demo", "--retries", "0")
    assert ran.returncode == 2
    assert "doradus tui needs a terminal" in ran.stderr
    assert "ssh -t" in ran.stderr


def test_the_command_is_listed_and_documents_its_options() -> None:
    done = subprocess.run([*DORADUS, "tui", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for option in (
        "--dataflow",
        "--refresh",
        "--theme",
        "--columns",
        "--profile",
        "--coordinator",
        "--token-file",
    ):
        assert option in done.stdout
    listed = subprocess.run([*DORADUS, "--help"], capture_output=True, text=True, timeout=60)
    assert "tui" in listed.stdout


def test_a_profile_names_the_coordinator(control: Control) -> None:
    port = free_port()
    control.env.pop("DORADUS_COORDINATOR", None)
    control.env["XDG_CONFIG_HOME"] = str(control.folder / "config")  # no user file
    (control.folder / ".git").mkdir()
    control.write("doradus.toml", f'[profiles.robot]\ncoordinator = "127.0.0.1:{port}"\n')
    for args in (["tui", "--profile", "robot"], ["--profile", "robot", "tui"]):
        ran = control(*args, "--retries", "0")
        assert ran.returncode == 1
        assert "Loaded profile: robot" in ran.stderr
        assert f"No coordinator at 127.0.0.1:{port}" in ran.stderr
    ran = control("tui", "--profile", "robt", "--retries", "0")
    assert ran.returncode == 2
    assert "did you mean `robot`?" in ran.stderr
