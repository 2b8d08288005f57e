"""Each command loads only its own module: `doradus run` never pays for the control plane."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.cli.conftest import Control

# Runs the CLI like the console script, then writes the names of every module it loaded.
LOADED = textwrap.dedent(
    """
    import atexit, sys

    def dump(path=sys.argv[1]):
        with open(path, "w") as out:
            out.write("\\n".join(sorted(sys.modules)))

    atexit.register(dump)
    sys.argv = ["doradus", *sys.argv[2:]]
    from doradus.cli import main
    main()
    """
)
COMMAND_MODULES = {
    "up": "doradus.cli._cluster",
    "list": "doradus.cli._dataflows",
    "status": "doradus.cli._status",
    "logs": "doradus.cli._logs",
    "init": "doradus.cli._project",
    "graph": "doradus.cli._graph",
}
NOT_FOR_RUN = (
    *COMMAND_MODULES.values(),
    "doradus._control.coordinator",
    "doradus._control.machine_daemon",
    "doradus._control.launch",
    "doradus._control.state",
    "doradus._control.models",
    "doradus._control.services",
    "doradus._control.dataflows",
    "doradus._control.logs",
    "doradus._project.templates",
    "fastapi",
    "uvicorn",
    "httpx",
    "websockets",
    "rich",
)


def _loaded(control: Control, *args: str) -> set[str]:
    listing = control.folder / "modules.txt"
    ran = subprocess.run(
        [sys.executable, "-c", LOADED, str(listing), *args],
        capture_output=True,
        text=True,
        env=control.env,
        cwd=control.folder,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    return set(Path(listing).read_text().split())


def test_run_loads_no_control_plane(control: Control) -> None:
    control.write("dataflow.yml", "nodes:\n  - id: hello\n    path: hello.py\n")
    control.write("hello.py", "print('hello', flush=True)\n")
    loaded = _loaded(control, "run", "dataflow.yml")  # no coordinator answers at its address
    assert "doradus._runtime.foreground" in loaded  # it did run
    assert "doradus._control.registration" in loaded  # it looked for a coordinator, 50 ms at most
    assert sorted(loaded.intersection(NOT_FOR_RUN)) == []


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES))
def test_a_command_loads_only_its_module(control: Control, command: str) -> None:
    loaded = _loaded(control, command, "--help")
    others = set(COMMAND_MODULES.values()) - {COMMAND_MODULES[command]}
    assert COMMAND_MODULES[command] in loaded
    assert sorted(loaded & others) == []
