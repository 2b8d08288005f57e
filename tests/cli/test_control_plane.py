"""The control plane driven through the real CLI: daemon retries, up → start → ... → destroy."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tests.cli.conftest import Control, free_port, pid_alive

TICKER = """
    nodes:
      - id: ticker
        path: ticker.py
        inputs:
          tick: dora/timer/millis/100
"""
TICKER_PY = """
    from doradus import Input, Node

    node = Node()
    count = 0
    for event in node:
        if isinstance(event, Input):
            count += 1
            print(f"tick {count}", flush=True)
    print("ticker stopped", flush=True)
"""


def eventually(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


FIX_LINE = (
    "Suggested fix: start a coordinator with `doradus up` (or `doradus coordinator`), "
    "or point --coordinator at a running one"
)


def _unreachable_lines(address: str, interval: float, retries: int) -> list[str]:
    """What a command prints when no coordinator answers: each retry, giving up, the fix."""
    cause = f"No coordinator at {address} (connection refused)"
    return [
        *(f"{cause}. Retrying in {interval:g}s... [Attempt {k}/{retries}]" for k in range(1, retries + 1)),
        "Maximum retries reached. Exiting.",
        FIX_LINE,
    ]


def test_daemon_without_coordinator_retries_then_gives_up_with_a_fix(control: Control) -> None:
    retries, interval = 2, 0.2
    address = f"127.0.0.1:{free_port()}"
    ran = control("daemon", "--retries", str(retries), "-c", address, "--retry-interval", str(interval))
    assert ran.returncode == 1
    # One try, then a retry after each interval; the 2 s cover the interpreter's start-up.
    assert ran.seconds < retries * interval + 2
    assert ran.stderr.splitlines() == _unreachable_lines(address, interval, retries)
    assert ran.stdout == ""


def test_daemon_default_is_two_retries_one_second_apart(control: Control) -> None:
    address = f"127.0.0.1:{free_port()}"
    ran = control("daemon", "-c", address)
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == _unreachable_lines(address, 1.0, 2)
    assert 2 * 1.0 <= ran.seconds < 2 * 1.0 + 2


def test_retries_0_tries_once_without_a_retry_line(control: Control) -> None:
    address = f"127.0.0.1:{free_port()}"
    ran = control("daemon", "--retries", "0", "-c", address, "--retry-interval", "2")
    assert ran.returncode == 1
    assert ran.seconds < 2  # no wait at all: 2 s would be one retry interval
    cause = f"No coordinator at {address} (connection refused)"
    assert ran.stderr.splitlines() == [f"{cause}. Exiting.", FIX_LINE]
    assert "Retrying" not in ran.stderr
    assert "Attempt" not in ran.stderr


def test_client_command_without_coordinator_follows_the_same_contract(control: Control) -> None:
    retries, interval = 1, 0.2
    address = f"127.0.0.1:{free_port()}"
    retry = ["--retries", str(retries), "--retry-interval", str(interval)]
    ran = control("list", "--output", "json", "-c", address, *retry)
    assert ran.returncode == 1
    assert ran.seconds < retries * interval + 2
    assert ran.stderr.splitlines() == _unreachable_lines(address, interval, retries)
    assert ran.stdout == ""


def test_retries_must_not_be_negative(control: Control) -> None:
    ran = control("list", "--retries", "-1")
    assert ran.returncode == 2
    assert "--retries" in ran.stderr


def test_full_cycle(control: Control) -> None:
    control.write("dataflow.yml", TICKER)
    control.write("ticker.py", TICKER_PY)

    up = control("up")
    assert up.returncode == 0, up.stderr
    state = json.loads(control.state_file.read_text())
    assert control.state_file.stat().st_mode & 0o777 == 0o600
    pids = list(state["pids"].values())
    assert len(pids) == 2
    assert all(pid_alive(p) for p in pids)
    again = control("up")
    assert again.returncode == 0
    assert "already running" in again.stderr

    started = control("start", "dataflow.yml", "--detach", "--name", "demo")
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()

    listed = json.loads(control("list", "--output", "json").stdout)
    assert [(d["name"], d["id"], d["status"], d["nodes"]) for d in listed] == [("demo", run_id, "running", 1)]

    def node_running() -> bool:
        status = json.loads(control("status", "demo", "--output", "json").stdout)
        node = status["nodes"]["ticker"]
        return node["state"] == "running" and isinstance(node["pid"], int) and pid_alive(node["pid"])

    assert eventually(node_running, 10)
    status = json.loads(control("status", "demo", "--format", "json").stdout)
    assert status["id"] == run_id
    assert set(status["nodes"]) == {"ticker"}
    node_pid = status["nodes"]["ticker"]["pid"]

    def has_ticks() -> bool:
        return control("logs", "demo", "--tail", "5").stdout.count("ticker | tick ") == 5

    assert eventually(has_ticks, 10)

    stopped = control("stop", "demo", "--grace-duration", "3s")
    assert stopped.returncode == 0, stopped.stderr

    def ended() -> bool:
        return json.loads(control("list", "--output", "json").stdout)[0]["status"] in ("stopped", "finished")

    assert eventually(ended, 10)
    final = json.loads(control("status", run_id, "--output", "json").stdout)
    assert final["nodes"]["ticker"]["exit_code"] == 0
    assert final["finished_at"] is not None
    assert not pid_alive(node_pid)
    assert "ticker | ticker stopped" in control("logs", "demo", "--tail", "2").stdout  # then: exited

    down = control("destroy")
    assert down.returncode == 0, down.stderr
    assert not control.state_file.exists()
    assert not any(pid_alive(p) for p in pids)


def test_bad_dataflow_exits_2_with_file_line(control: Control) -> None:
    path = control.write("dataflow.yml", "nodes:\n  - id: a\n    path: a.py\n    inputs:\n      x: nope\n")
    ran = control("start", "dataflow.yml", "--detach", "--retries", "0")
    assert ran.returncode == 2
    assert f"{path.name}:5:" in ran.stderr or f"{path}:5:" in ran.stderr, ran.stderr
    assert ran.stdout == ""


def test_unknown_option_value_is_usage_error(control: Control) -> None:
    ran = control("list", "--output", "xml")
    assert ran.returncode == 2


FAILING = """
    nodes:
      - id: crasher
        path: crasher.py
        inputs:
          tick: dora/timer/millis/100
"""
CRASHER_PY = """
    from doradus import Node

    node = Node()
    next(iter(node))
    print("about to fail", flush=True)
    raise SystemExit(3)
"""


def test_attached_start_follows_logs_and_ctrl_c_stops(control: Control) -> None:
    import signal
    import subprocess

    from tests.cli.conftest import DORADUS

    control.write("dataflow.yml", TICKER)
    control.write("ticker.py", TICKER_PY)
    control.write("bad.yml", FAILING)
    control.write("crasher.py", CRASHER_PY)
    assert control("up").returncode == 0

    failed = control("start", "bad.yml", "--attach")
    assert failed.returncode == 1, failed.stderr
    assert "crasher | about to fail" in failed.stdout
    assert "failed" in failed.stderr

    proc = subprocess.Popen(
        [*DORADUS, "start", "dataflow.yml", "--name", "attached"],
        env=control.env,
        cwd=control.folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("ticker | tick 1"), first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "ticker | ticker stopped" in out
    listed = {d["name"]: d["status"] for d in json.loads(control("list", "--output", "json").stdout)}
    assert listed == {"bad": "failed", "attached": "stopped"}


def test_non_loopback_bind_needs_a_token(control: Control) -> None:
    ran = control("coordinator", "--bind", "0.0.0.0", "--port", "1")
    assert ran.returncode == 2
    assert "without a token" in ran.stderr
    assert "Suggested fix:" in ran.stderr
