"""The coordinator's token and a broker's password never show, wherever Doradus shows things.

A real coordinator and daemon (`doradus up`) run a dataflow whose broker URL carries a
password and fails to connect; everything a user or another program can read is collected —
the CLI's output (``list``, ``status``, ``logs``, ``check``), the HTTP API's answers, the live
stream, the coordinator's and daemon's log files — and searched for the token and the password.
See docs/security.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlencode

from tests.cli.conftest import Control, free_port
from tests.cli.test_control_plane import eventually
from websockets.sync.client import connect

PASSWORD = "pw-3Rt8-never-shown"
FLOW = """
communication:
  local: redis
  redis:
    url: "redis://robot:{password}@127.0.0.1:{port}/0"
    connect_retries: 2
nodes:
  - id: source
    path: source.py
    outputs: [out]
  - id: sink
    path: sink.py
    inputs:
      x: source/out
"""
SOURCE_PY = "from doradus import Node\nnode = Node()\nnode.send_output('out', [1])\n"
SINK_PY = "from doradus import Node\nfor event in Node():\n    print(event)\n"
STREAM_SECONDS = 3.0
"""How long the stream is read: a few of its one-second updates."""


def _status(control: Control, name: str) -> str:
    shown = control("status", name, "--output", "json")
    return str(json.loads(shown.stdout)["status"]) if shown.returncode == 0 else ""


def _stream(control: Control, name: str) -> list[str]:
    """Every message of the live stream for ``name`` (its log tail first) for a few seconds."""
    query = urlencode({"dataflow": name, "tail": 200, "level": "DEBUG"})
    url = f"ws://{control.address}/api/v1/stream?{query}"
    messages: list[str] = []
    deadline = time.monotonic() + STREAM_SECONDS
    with connect(url, additional_headers=control.headers, max_size=None, open_timeout=10) as ws:
        while (left := deadline - time.monotonic()) > 0:
            try:
                messages.append(str(ws.recv(timeout=left)))
            except TimeoutError:
                break
    return messages


def _everything_shown(control: Control, name: str) -> dict[str, str]:
    shown: dict[str, str] = {}
    for args in (
        ("list",),
        ("list", "--output", "json"),
        ("status", name),
        ("status", name, "--output", "json"),
        ("logs", name),
        ("logs", name, "--output", "json"),
        ("check", "dataflow.yml"),
        ("check", "dataflow.yml", "--output", "json"),
    ):
        ran = control(*args)
        shown[" ".join(args)] = ran.stdout + ran.stderr
    for path in ("/dataflows", f"/dataflows/{name}", f"/dataflows/{name}/logs", "/daemons", "/health"):
        answer = control.api("GET", path)
        shown[f"GET {path}"] = f"{answer.status_code} {answer.headers} {answer.text}"
    shown["stream"] = "\n".join(_stream(control, name))
    for log in sorted((control.runtime / "doradus").glob("*.log")):
        shown[log.name] = log.read_text(errors="replace")
    return shown


def test_no_token_or_broker_password_in_anything_shown(control: Control) -> None:
    control.write("dataflow.yml", FLOW.format(password=PASSWORD, port=free_port()))  # nothing listens
    control.write("source.py", SOURCE_PY)
    control.write("sink.py", SINK_PY)
    assert control("up").returncode == 0
    token = (
        control.runtime / "doradus" / f"coordinator-{control.address.rpartition(':')[2]}.token"
    ).read_text()
    started = control("start", "dataflow.yml", "--name", "leaky", "--detach")
    assert started.returncode == 0, started.stderr
    assert eventually(lambda: _status(control, "leaky") == "failed", 30), control("status", "leaky").stdout

    shown = _everything_shown(control, "leaky")

    assert "redis://robot:***@127.0.0.1" in shown["logs leaky"]  # the failure is told, masked
    leaks = {where: text for where, text in shown.items() if token.strip() in text or PASSWORD in text}
    assert leaks == {}


def test_a_wrong_token_is_refused_without_quoting_either_token(control: Control, tmp_path: Path) -> None:
    assert control("up").returncode == 0
    port = control.address.rpartition(":")[2]
    token = (control.runtime / "doradus" / f"coordinator-{port}.token").read_text().strip()
    wrong = tmp_path / "wrong.token"
    wrong.write_text("wrong-token-5Fj2-never-shown\n")
    wrong.chmod(0o600)

    refused = control("list", "--token-file", str(wrong))

    assert refused.returncode != 0
    assert "token" in refused.stderr  # it says what is wrong …
    said = refused.stdout + refused.stderr
    assert "wrong-token-5Fj2" not in said  # … without quoting what was sent
    assert token not in said
    logs = "".join(p.read_text(errors="replace") for p in (control.runtime / "doradus").glob("*.log"))
    assert "wrong-token-5Fj2" not in logs
    assert token not in logs
