"""Hostile use of the control API, through real processes.

No response quotes a file the client named; special files and huge bodies get a clear error
while the API keeps answering; a client cannot take a live daemon's seat; malformed daemon
frames get a close code, not a traceback; the API needs a token unless told otherwise.
See docs/security.md.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from tests.cli.conftest import DORADUS, Control, open_control
from tests.cli.test_control_plane import TICKER, TICKER_PY, eventually

SECRET_LINES = [
    "aws_access_key_id: AKIAZZSECRETZZ4242",
    "db_password: hunter2-is-not-a-password",
    "oauth_refresh_token: 1//0gLx-refresh-me-not",
    "root:*:20228:0:99999:7:::",
    "daemon:*:20228:0:99999:7:::",
]
SECRET_WORDS = ["aws_access_key_id", "AKIAZZSECRETZZ4242", "db_password", "hunter2", "oauth_refresh_token",
                "1//0gLx", "root:*", "daemon:*", "20228"]  # fmt: skip
VALID = "nodes:\n  - id: talker\n    path: talker.py\n"
TALKER_PY = "print('hello', flush=True)\n"
HOSTILE = ["fifo", "dev_zero", "big_file", "symlink_to_dev_zero"]
MIB = 1 << 20


def _secret(folder: Path) -> Path:
    path = folder / "keys.yml"
    path.write_text("\n".join(SECRET_LINES) + "\n")
    path.chmod(0o600)
    return path


def _assert_no_secret(response: httpx.Response) -> None:
    body = f"{response.status_code} {response.headers} {response.text}"
    leaked = [word for word in [*SECRET_LINES, *SECRET_WORDS] if word in body]
    assert not leaked, f"the response quotes the secret file ({leaked}): {body}"


def _coordinator_pid(control: Control) -> int:
    return int(json.loads(control.state_file.read_text())["pids"]["coordinator"])


def _up(control: Control, *args: str) -> None:
    up = control("up", *args)
    assert up.returncode == 0, up.stderr


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Control]:
    """One coordinator and daemon for the tests that leave them as they found them."""
    with open_control(tmp_path_factory.mktemp("security") / "project") as control:
        control.write("talker.py", TALKER_PY)
        _up(control)
        yield control


# --------------------------------------------------------------------------- 1. disclosure
def test_no_response_quotes_a_file_the_client_named(shared: Control) -> None:
    secret = _secret(shared.folder)
    schema_node = (
        "nodes:\n  - id: a\n    path: dynamic\n    outputs: [o]\n    data_format: {fmt}\n    schema: {s}\n"
    )
    bodies: list[dict[str, Any]] = [
        {"path": str(secret)},  # an old client's request: the coordinator must not open it
        {"path": str(secret), "name": "leak"},
        {"path": str(secret), "text": None},
        {"path": str(secret), "text": f"nodes:\n  - id: a\n    path: {secret}\n"},  # run it as a program
        {"path": str(shared.folder / "x.yml"), "text": schema_node.format(fmt="avro", s=secret)},
        {"path": str(shared.folder / "x.yml"), "text": schema_node.format(fmt="capnp", s=f"{secret}:T")},
    ]
    for body in bodies:
        _assert_no_secret(shared.api("POST", "/dataflows", json=body))
    external = {"name": "ext", "id": "ext-1", "nodes": ["a"], "machine": "m", "path": str(secret)}
    _assert_no_secret(shared.api("POST", "/dataflows/external", json=external))
    shared.write("flow.yml", VALID)
    started = shared.api("POST", "/dataflows", json={"path": str(shared.folder / "flow.yml"), "text": VALID})
    assert started.status_code == 201, started.text
    _assert_no_secret(shared.api("POST", f"/dataflows/{started.json()['id']}/restart", json={}))
    for response in (shared.api("GET", "/dataflows"), shared.api("GET", "/dataflows/ext")):
        _assert_no_secret(response)


def test_a_path_without_text_is_refused_with_a_clear_error(shared: Control) -> None:
    shared.write("flow.yml", VALID)
    refused = shared.api("POST", "/dataflows", json={"path": str(shared.folder / "flow.yml")})
    assert refused.status_code == 422
    assert "text" in refused.text


# --------------------------------------------------------------------- 2. freezing, killing
def _hostile_file(folder: Path, kind: str) -> Path:
    path = folder / f"{kind}.yml"
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "big_file":
        with open(path, "wb") as file:
            file.truncate(100 * MIB)  # sparse: 100 MiB to read, no disk used
    elif kind == "dev_zero":
        return Path("/dev/zero")
    else:
        path.symlink_to("/dev/zero")
    return path


@pytest.mark.parametrize("kind", HOSTILE)
def test_special_files_get_an_error_while_the_api_keeps_answering(shared: Control, kind: str) -> None:
    target = _hostile_file(shared.folder, kind)
    coordinator = psutil.Process(_coordinator_pid(shared))
    before = coordinator.memory_info().rss
    answers: list[httpx.Response | Exception] = []

    def hostile() -> None:
        try:
            answers.append(shared.api("POST", "/dataflows", json={"path": str(target)}))
        except httpx.HTTPError as exc:
            answers.append(exc)

    thread = threading.Thread(target=hostile)
    thread.start()
    deadline = time.monotonic() + 12
    while thread.is_alive() and time.monotonic() < deadline:
        began = time.monotonic()
        assert shared.api("GET", "/health").status_code == 200
        assert time.monotonic() - began < 1.0, "the API froze while a hostile request was pending"
        time.sleep(0.05)
    thread.join(timeout=1)
    assert answers, "the hostile request got no answer"
    answer = answers[0]
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 422, answer.text
    assert "text" in answer.json()["detail"]["error"]
    assert coordinator.memory_info().rss - before < 100 * MIB


@pytest.mark.parametrize("kind", HOSTILE)
def test_start_refuses_special_and_huge_files_at_once(shared: Control, kind: str) -> None:
    target = _hostile_file(shared.folder, kind)
    ran = shared("start", str(target), "--detach", timeout=20)
    assert ran.returncode == 2, ran.stderr
    assert ran.seconds < 10
    expected = "larger than 1 MiB" if kind == "big_file" else "not a regular file"
    assert expected in ran.stderr, ran.stderr
    checked = shared("check", str(target), timeout=20)
    assert checked.returncode != 0
    assert expected in checked.stdout + checked.stderr


def test_dataflow_text_over_1_mib_is_refused(shared: Control) -> None:
    comment = "# " + "x" * 100 + "\n"
    path = shared.write("huge.yml", VALID + comment * (MIB // len(comment) + 1))
    ran = shared("start", str(path), "--detach")
    assert ran.returncode == 2
    assert "larger than 1 MiB" in ran.stderr
    text = VALID + comment * (MIB // len(comment) + 1)
    refused = shared.api("POST", "/dataflows", json={"path": str(path), "text": text})
    assert refused.status_code == 422


def test_a_huge_body_is_refused_before_it_is_read(shared: Control) -> None:
    coordinator = psutil.Process(_coordinator_pid(shared))
    before = coordinator.memory_info().rss
    host, port = shared.address.rsplit(":", 1)
    token = shared.headers["Authorization"]
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        head = (
            f"POST /api/v1/dataflows HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {100 * MIB}\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"path": "/x.yml", "text": "')
        answer = sock.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer

    def chunks() -> Iterator[bytes]:
        yield b'{"path": "/x.yml", "text": "'
        for _ in range(100):
            yield b"a" * MIB

    try:
        streamed = httpx.post(
            f"http://{shared.address}/api/v1/dataflows", content=chunks(), headers=shared.headers, timeout=10
        )
        assert streamed.status_code == 413
    except httpx.TransportError:
        pass  # the coordinator closed the connection before the client finished sending
    assert shared.api("GET", "/health").status_code == 200
    assert coordinator.memory_info().rss - before < 100 * MIB


# ---------------------------------------------------------------------- 3. impersonation
def _frames(
    control: Control, frames: list[Any], headers: dict[str, str] | None = None, wait: float = 5.0
) -> tuple[int | None, str]:
    """Send ``frames`` on ``/api/v1/daemon``; how the coordinator closed (None: it did not)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = f"ws://{control.address}/api/v1/daemon"
    with connect(
        url, additional_headers=control.headers if headers is None else headers, max_size=None
    ) as ws:
        try:
            for frame in frames:
                ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))
                if isinstance(frame, dict) and frame.get("type") == "register":
                    reply = json.loads(ws.recv(timeout=wait))
                    assert reply["type"] == "welcome", reply
            while True:
                ws.recv(timeout=wait)
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd is not None else (None, "no close frame")
        except TimeoutError:
            return None, "still open"


def _register(machine: str, secret: str | None) -> dict[str, Any]:
    message = {"type": "register", "machine_id": machine, "hostname": "x", "pid": 1}
    return message if secret is None else {**message, "secret": secret}


def _daemon_key(control: Control) -> str:
    port = control.address.rpartition(":")[2]
    return (control.runtime / "doradus" / f"coordinator-{port}.daemon-key").read_text().strip()


def _refused(control: Control, message: dict[str, Any]) -> tuple[int | None, str]:
    """Send one register (as text: no welcome expected); how the coordinator closed."""
    return _frames(control, [json.dumps(message)], wait=3.0)


def _seats(control: Control) -> list[tuple[str, int, str]]:
    return [(d["machine_id"], d["pid"], d["status"]) for d in control.api("GET", "/daemons").json()]


def _start_works(control: Control) -> None:
    control.write("flow.yml", VALID)
    started = control("start", "flow.yml", "--detach")
    assert started.returncode == 0, started.stderr


def test_a_client_cannot_unseat_the_real_daemon(control: Control) -> None:
    control.write("talker.py", TALKER_PY)
    _up(control)
    seats = _seats(control)
    [(machine, _pid, status)] = seats
    assert status == "connected"
    token = control.headers["Authorization"].removeprefix("Bearer ")
    for secret in (None, "wrong"):
        code, reason = _refused(control, _register(machine, secret))
        assert code == 4401, reason
        assert "secret" in reason
    for secret in (_daemon_key(control), token):
        code, reason = _refused(control, _register(machine, secret))
        assert code == 4409, reason
        assert machine in reason
    time.sleep(0.5)  # what a lost seat would need to show
    assert _seats(control) == seats
    _start_works(control)


def test_without_a_token_a_daemon_still_proves_itself(control: Control) -> None:
    control.write("talker.py", TALKER_PY)
    _up(control, "--no-token")
    assert control.headers == {}
    seats = _seats(control)
    [(machine, _pid, _status)] = seats
    code, _reason = _refused(control, _register(machine, None))
    assert code == 4401
    code, _reason = _refused(control, _register(machine, _daemon_key(control)))
    assert code == 4409
    code, _reason = _refused(control, _register("another-machine", "guess"))
    assert code == 4401
    assert _seats(control) == seats
    _start_works(control)


def test_a_restarted_daemon_takes_its_seat_back(control: Control) -> None:
    control.write("talker.py", TALKER_PY)
    _up(control)
    [(machine, old_pid, _status)] = _seats(control)
    os.kill(old_pid, signal.SIGKILL)
    assert eventually(lambda: _seats(control)[0][2] == "lost", 5)
    daemon = subprocess.Popen(
        [*DORADUS, "daemon", "--machine-id", machine], env=control.env, cwd=control.folder,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert eventually(lambda: _seats(control) == [(machine, daemon.pid, "connected")], 10)
        _start_works(control)
    finally:
        daemon.kill()
        daemon.wait(timeout=10)


def test_a_daemon_without_the_secret_is_told_why(control: Control) -> None:
    _up(control, "--no-token")
    elsewhere = dict(control.env, XDG_RUNTIME_DIR=str(control.folder))  # no key file there
    ran = subprocess.run(
        [*DORADUS, "daemon", "--machine-id", "intruder", "--retries", "0"],
        env=elsewhere, cwd=control.folder, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert "secret" in ran.stderr
    assert "Suggested fix:" in ran.stderr


# --------------------------------------------------------------------- malformed frames
BAD_FIRST_FRAMES = [
    pytest.param(b"\x00\x01binary", 1003, id="binary"),
    pytest.param("not json {", 1007, id="not-json"),
    pytest.param("[1, 2]", 4400, id="not-an-object"),
    pytest.param({"type": "hello"}, 4400, id="not-register"),
    pytest.param({"type": "register"}, 4400, id="missing-keys"),
    pytest.param(
        {"type": "register", "machine_id": 7, "hostname": "x", "pid": "one"}, 4400, id="wrong-types"
    ),
    pytest.param("x" * (16 * MIB + 1), 1009, id="oversized"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FIRST_FRAMES)
def test_a_malformed_first_frame_gets_a_close_code(shared: Control, frame: Any, code: int) -> None:
    closed, reason = _frames(shared, [frame])
    assert closed == code, reason
    assert reason


BAD_LATER_FRAMES = [
    pytest.param("not json {", 1007, id="not-json"),
    pytest.param({"type": "node", "id": "x", "node": 3}, 4400, id="node-not-text"),
    pytest.param(
        {"type": "node", "id": "x", "node": "a", "cpu_percent": "hot"}, 4400, id="metric-not-number"
    ),
    pytest.param({"type": "log", "id": "x", "record": {"level": "LOUD"}}, 4400, id="bad-record"),
    pytest.param({"type": "spawned"}, 4400, id="missing-id"),
    pytest.param({"type": "teleport"}, 4400, id="unknown-type"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_LATER_FRAMES)
def test_a_malformed_report_gets_a_close_code(shared: Control, frame: Any, code: int) -> None:
    machine = f"fake-{code}-{time.monotonic_ns()}"
    closed, reason = _frames(shared, [_register(machine, _daemon_key(shared)), frame])
    assert closed == code, reason
    assert reason


def test_malformed_frames_leave_no_traceback(shared: Control) -> None:
    for frame in ("not json {", {"type": "register"}, "[]"):
        _frames(shared, [frame])
    _frames(shared, [_register(f"fake-{time.monotonic_ns()}", _daemon_key(shared)), {"type": "node"}])
    log = (shared.runtime / "doradus" / "coordinator.log").read_text()
    assert "Traceback" not in log, log
    real = [status for machine, _pid, status in _seats(shared) if not machine.startswith("fake-")]
    assert real == ["connected"]


# ------------------------------------------------------------------------ 4. log follow
@pytest.mark.parametrize(
    ("query", "code"), [("", 4404), ("?level=loud", 4422)], ids=["unknown-dataflow", "bad-filter"]
)
def test_log_follow_closes_with_the_documented_code(shared: Control, query: str, code: int) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    name = "no-such-dataflow" if code == 4404 else "ext"
    if code == 4422:
        body = {"name": "ext", "id": "ext-follow", "nodes": ["a"], "machine": "m", "path": "/x.yml"}
        shared.api("POST", "/dataflows/external", json=body)
    url = f"ws://{shared.address}/api/v1/dataflows/{name}/logs/follow{query}"
    with connect(url, additional_headers=shared.headers) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code
    assert closed.value.rcvd.reason


# ------------------------------------------------------------------------- 5. trust model
def test_up_protects_the_api_with_a_token_by_default(control: Control) -> None:
    _up(control)
    state = json.loads(control.state_file.read_text())
    token_file = Path(state["token_file"])
    assert token_file.parent == control.runtime / "doradus"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert (control.runtime / "doradus").stat().st_mode & 0o777 == 0o700
    assert len(token_file.read_text().strip()) >= 32
    url = f"http://{control.address}/api/v1"
    assert httpx.get(f"{url}/dataflows", timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert httpx.get(f"{url}/dataflows", headers=wrong, timeout=5).status_code == 401
    assert control.api("GET", "/dataflows").status_code == 200
    assert httpx.get(f"http://{control.address}/metrics", timeout=5).status_code == 401
    listed = control("list", "--output", "json")  # the CLI finds the token itself
    assert listed.returncode == 0, listed.stderr
    down = control("destroy")
    assert down.returncode == 0, down.stderr
    assert not token_file.exists()


def test_up_no_token_leaves_the_loopback_api_open(control: Control) -> None:
    _up(control, "--no-token")
    assert "token_file" not in json.loads(control.state_file.read_text())
    assert httpx.get(f"http://{control.address}/api/v1/dataflows", timeout=5).status_code == 200


def test_no_token_is_refused_beyond_loopback(control: Control) -> None:
    ran = control("coordinator", "--bind", "0.0.0.0", "--port", "1", "--no-token")
    assert ran.returncode == 2
    assert "without a token" in ran.stderr


def test_restart_runs_the_text_it_was_started_with(control: Control) -> None:
    control.write("dataflow.yml", TICKER)
    control.write("ticker.py", TICKER_PY)
    _up(control)
    started = control("start", "dataflow.yml", "--detach", "--name", "kept")
    assert started.returncode == 0, started.stderr
    (control.folder / "dataflow.yml").write_text("this: is no longer a dataflow\n")
    restarted = control("restart", "kept", "--grace-duration", "1s", "--output", "json")
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads(restarted.stdout)["status"] == "running"
    assert control("stop", "kept", "--force").returncode == 0
