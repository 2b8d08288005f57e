"""Daemon liveness, ``restart``, ``clean`` and ``run`` beside ``up``, through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from datetime import datetime
from typing import Any

import pytest
from tests.cli.conftest import Control, pid_alive
from tests.cli.test_control_plane import TICKER, TICKER_PY, eventually

SHORT = """
    nodes:
      - id: talker
        path: talker.py
"""
TALKER_PY = """
    for k in range(1, 6):
        print(f"line {k}", flush=True)
"""


def _api(control: Control, path: str) -> Any:
    response = control.api("GET", path)
    response.raise_for_status()
    return response.json()


def _status(control: Control, name: str) -> dict[str, Any]:
    ran = control("status", name, "--output", "json")
    assert ran.returncode == 0, ran.stderr
    return dict(json.loads(ran.stdout))


def _ticker(control: Control) -> None:
    control.write("dataflow.yml", TICKER)
    control.write("ticker.py", TICKER_PY)
    up = control("up")
    assert up.returncode == 0, up.stderr


def _node_pid(control: Control, name: str) -> int:
    def running() -> bool:
        node = _status(control, name)["nodes"]["ticker"]
        return node["state"] == "running" and isinstance(node["pid"], int)

    assert eventually(running, 10)
    return int(_status(control, name)["nodes"]["ticker"]["pid"])


def test_killed_daemon_is_lost_and_its_dataflow_failed(control: Control) -> None:
    _ticker(control)
    started = control("start", "dataflow.yml", "--detach", "--name", "long")
    assert started.returncode == 0, started.stderr
    node_pid = _node_pid(control, "long")
    daemon_pid = int(json.loads(control.state_file.read_text())["pids"]["daemon"])
    assert [d["status"] for d in _api(control, "/daemons")] == ["connected"]

    os.kill(daemon_pid, signal.SIGKILL)
    interval = 1.0

    def failed() -> bool:
        return bool(_status(control, "long")["status"] == "failed")

    assert eventually(failed, 2 * interval + 2)
    status = _status(control, "long")
    assert status["reason"].startswith("daemon ")
    assert status["reason"].endswith(" lost")
    assert status["nodes"]["ticker"]["state"] == "lost"
    daemons = _api(control, "/daemons")
    assert len(daemons) == 1
    assert daemons[0]["status"] == "lost"
    last_seen = datetime.fromisoformat(daemons[0]["last_seen_at"])
    assert daemons[0]["last_seen_at"].endswith("Z")
    assert last_seen.timestamp() <= time.time()
    # The node lost its control socket with its daemon: it exits by itself.
    assert eventually(lambda: not pid_alive(node_pid), 5), "node outlived its daemon"


def test_restart_keeps_name_and_env_and_gives_a_new_id(control: Control) -> None:
    _ticker(control)
    greeter = 'import os\nprint("greeting", os.environ.get("GREETING"), flush=True)\n'
    (control.folder / "ticker.py").write_text(greeter + textwrap.dedent(TICKER_PY).lstrip("\n"))
    first = control("start", "dataflow.yml", "--detach", "--name", "demo", "--env", "GREETING=hi")
    assert first.returncode == 0, first.stderr
    old_id = first.stdout.strip()
    old_pid = _node_pid(control, "demo")

    again = control("restart", "demo", "--grace-duration", "2s", "--output", "json")
    assert again.returncode == 0, again.stderr
    new = json.loads(again.stdout)
    assert new["name"] == "demo"
    assert new["status"] == "running"
    assert new["id"] != old_id
    assert not pid_alive(old_pid)
    listed = {
        d["id"]: (d["name"], d["status"]) for d in json.loads(control("list", "--output", "json").stdout)
    }
    assert listed == {old_id: ("demo", "stopped"), new["id"]: ("demo", "running")}
    assert eventually(lambda: "ticker | greeting hi" in control("logs", new["id"]).stdout, 10)

    plain = control("restart", "demo", "--grace-duration", "1s")
    assert plain.returncode == 0, plain.stderr
    assert len(plain.stdout.strip()) == len(old_id)

    missing = control("restart", "nope")
    assert missing.returncode == 2


def test_clean_removes_only_ended_dataflows(control: Control) -> None:
    _ticker(control)
    assert control("start", "dataflow.yml", "--detach", "--name", "a").returncode == 0
    assert control("start", "dataflow.yml", "--detach", "--name", "b").returncode == 0
    assert control("stop", "a", "--grace-duration", "1s").returncode == 0
    assert eventually(lambda: _status(control, "a")["status"] != "running", 10)

    kept = control("clean", "--older-than", "1h", "--output", "json")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["removed"] == 0

    cleaned = control("clean", "--output", "json")
    assert cleaned.returncode == 0, cleaned.stderr
    assert json.loads(cleaned.stdout)["removed"] == 1
    listed = json.loads(control("list", "--output", "json").stdout)
    assert [(d["name"], d["status"]) for d in listed] == [("b", "running")]
    plain = control("clean")
    assert plain.returncode == 0
    assert "removed 0" in plain.stderr


def test_run_registers_with_a_running_coordinator(control: Control) -> None:
    control.write("dataflow.yml", SHORT)
    control.write("talker.py", TALKER_PY)
    assert control("up").returncode == 0

    ran = control("run", "dataflow.yml")
    assert ran.returncode == 0, ran.stderr
    assert "talker | line 5" in ran.stdout
    assert "Registered as" in ran.stderr
    run_dir = next((control.folder / "out").iterdir())

    listed = json.loads(control("list", "--output", "json").stdout)
    assert len(listed) == 1
    flow = listed[0]
    assert (flow["id"], flow["status"], flow["nodes"], flow["external"]) == (
        run_dir.name,
        "finished",
        1,
        True,
    )
    status = _status(control, flow["name"])
    assert status["nodes"]["talker"]["state"] == "finished"
    assert status["nodes"]["talker"]["exit_code"] == 0
    tail = control("logs", flow["name"], "--tail", "3", "--grep", "^line")
    assert tail.returncode == 0, tail.stderr
    assert [line.split("  ", 2)[2] for line in tail.stdout.splitlines()] == [
        "talker | line 3",
        "talker | line 4",
        "talker | line 5",
    ]

    assert control("destroy").returncode == 0


def test_run_without_coordinator_does_not_wait(control: Control, monkeypatch: pytest.MonkeyPatch) -> None:
    from doradus._control.registration import REGISTER_CONNECT_TIMEOUT, RunRegistration

    control.write("dataflow.yml", SHORT)
    control.write("talker.py", TALKER_PY)
    ran = control("run", "dataflow.yml")
    assert ran.returncode == 0, ran.stderr
    assert "talker | line 5" in ran.stdout
    assert "Registered" not in ran.stderr

    class Flow:
        name = "x"
        nodes: tuple[Any, ...] = ()

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(control.runtime))
    # Refused (nothing listens on the loopback port): one short attempt, no retries.
    monkeypatch.setenv("DORADUS_COORDINATOR", control.env["DORADUS_COORDINATOR"])
    began = time.monotonic()
    assert RunRegistration.open(Flow(), "id", control.folder / "dataflow.yml") is None
    assert time.monotonic() - began < REGISTER_CONNECT_TIMEOUT + 0.05


def test_stop_reaches_a_dataflow_that_doradus_run_runs(control: Control) -> None:
    import subprocess

    from tests.cli.conftest import DORADUS

    control.write("dataflow.yml", TICKER)
    control.write("ticker.py", TICKER_PY)
    assert control("up").returncode == 0
    run = subprocess.Popen(
        [*DORADUS, "run", "dataflow.yml"],
        env=control.env,
        cwd=control.folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def listed_running() -> bool:
            flows = json.loads(control("list", "--output", "json").stdout)
            return bool(flows) and flows[0]["status"] == "running"

        assert eventually(listed_running, 15)
        name = json.loads(control("list", "--output", "json").stdout)[0]["name"]
        began = time.monotonic()
        assert control("stop", name).returncode == 0
        out, err = run.communicate(timeout=20)
        # The run learns it with its next report (every 0.5 s) and stops like Ctrl-C would.
        assert time.monotonic() - began < 10
        assert run.returncode == 0, err
        assert "stop requested through the coordinator" in err
        assert "ticker | ticker stopped" in out
        final = json.loads(control("list", "--output", "json").stdout)[0]
        assert final["status"] == "stopped"
        assert final["stop_requested"] is True
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert control("destroy").returncode == 0
