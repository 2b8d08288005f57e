"""Three hosts on one machine: network namespaces joined by a bridge, a coordinator and two daemons.

One dataflow places nodes on two machines; its edges cross hosts over Zenoh (machine ``a`` →
``b``) and over TCP (``b`` → ``a``). Then a daemon is killed: the coordinator reports it lost
within two heartbeat intervals and the dataflow's state names the nodes that are gone.
Namespaces, the bridge and every process are removed whatever happens.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DORADUS = [sys.executable, "-m", "doradus.cli"]
SUBNET = "10.231.{}.{}"
HEARTBEAT = 1.0


def _root_or_skip() -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("the multi-host test needs root (ip netns) and CI must run it")
    pytest.skip("needs root to create network namespaces (ip netns)")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Hosts:
    tag: str
    net: int
    folder: Path
    token_file: Path
    names: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def env(self, host: str) -> dict[str, str]:
        runtime = self.folder / f"runtime-{host}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DORADUS_", "OTEL_"))}
        env.update(
            XDG_RUNTIME_DIR=str(runtime),
            DORADUS_COORDINATOR=f"{self.addresses['c']}:6300",
            DORADUS_TOKEN_FILE=str(self.token_file),
            NO_COLOR="1",
        )
        return env

    def start(self, host: str, *args: str) -> subprocess.Popen[str]:
        command = ["ip", "netns", "exec", self.names[host], *DORADUS, *args]
        proc = subprocess.Popen(
            command,
            env=self.env(host),
            cwd=self.folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def run(self, host: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = ["ip", "netns", "exec", self.names[host], *DORADUS, *args]
        return subprocess.run(
            command, env=self.env(host), cwd=self.folder, capture_output=True, text=True, timeout=timeout
        )

    def watch_lost(self, machine: str) -> subprocess.Popen[str]:
        """A poller in the coordinator's namespace: prints ``watching``, then when ``machine`` is lost."""
        script = textwrap.dedent(
            f"""
            import httpx, time
            headers = {{"Authorization": "Bearer " + open({str(self.token_file)!r}).read().strip()}}
            url = "http://{self.addresses["c"]}:6300/api/v1/daemons"
            print("watching", flush=True)
            deadline = time.time() + 30
            with httpx.Client(headers=headers, timeout=5) as client:
                while time.time() < deadline:
                    daemons = client.get(url).json()
                    if any(d["machine_id"] == {machine!r} and d["status"] == "lost" for d in daemons):
                        print(time.time(), flush=True)
                        break
                    time.sleep(0.05)
            """
        )
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.names["c"], sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def api(self, path: str) -> object:
        """GET the coordinator's API from inside its namespace."""
        script = (
            "import httpx,sys,json;"
            f"r=httpx.get('http://{self.addresses['c']}:6300/api/v1{path}',"
            f"headers={{'Authorization':'Bearer '+open('{self.token_file}').read().strip()}},timeout=5);"
            "print(r.text)"
        )
        out = subprocess.run(
            ["ip", "netns", "exec", self.names["c"], sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return json.loads(out.stdout)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    _root_or_skip()
    tag = secrets.token_hex(3)
    net = 100 + secrets.randbelow(150)
    token = tmp_path / "token"
    token.write_text(secrets.token_urlsafe(24) + "\n")
    token.chmod(0o600)
    found = Hosts(tag, net, tmp_path, token)
    bridge = f"dxbr{tag}"
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("link", "set", bridge, "up")
        for index, host in enumerate(("c", "a", "b"), start=1):
            ns = f"dx{tag}{host}"
            found.names[host] = ns
            found.addresses[host] = SUBNET.format(net, index)
            _ip("netns", "add", ns)
            _ip("link", "add", f"dx{tag}{host}0", "type", "veth", "peer", "name", f"dx{tag}{host}1")
            _ip("link", "set", f"dx{tag}{host}1", "master", bridge)
            _ip("link", "set", f"dx{tag}{host}1", "up")
            _ip("link", "set", f"dx{tag}{host}0", "netns", ns)
            _ip("-n", ns, "addr", "add", f"{found.addresses[host]}/24", "dev", f"dx{tag}{host}0")
            _ip("-n", ns, "link", "set", f"dx{tag}{host}0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield found
    finally:
        for proc in found.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if proc.stdout is not None:
                proc.stdout.close()
        for ns in found.names.values():
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        assert not [
            n
            for n in found.names.values()
            if n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        ], "a namespace was left behind"


FLOW = """
nodes:
  - id: source
    path: source.py
    deploy: {machine: a}
    inputs:
      tick: dora/timer/millis/20
    outputs: [out]
  - id: relay
    path: relay.py
    deploy: {machine: b}
    communication: {remote: tcp}
    inputs:
      x: {source: source/out, queue_size: 1000}
    outputs: [out]
  - id: sink
    path: sink.py
    deploy: {machine: a}
    inputs:
      y: {source: relay/out, queue_size: 1000}
"""
NODES = {
    "source.py": """
        import os
        from doradus import Input, Node
        node = Node()
        count = int(os.environ.get("COUNT", "50"))
        sent = 0
        for event in node:  # COUNT=0: until stopped
            if isinstance(event, Input):
                node.send_output("out", [sent])
                sent += 1
                if sent == count:
                    break
    """,
    "relay.py": """
        from doradus import Input, Node
        node = Node()
        for event in node:
            if isinstance(event, Input):
                node.send_output("out", event.value)
    """,
    "sink.py": """
        import json, os
        from doradus import Input, Node
        got = []
        for event in Node():
            if isinstance(event, Input):
                got.append(event.value[0].as_py())
                json.dump(got, open(os.environ.get("OUT", "sink.json"), "w"))
    """,
}


def _wait(predicate: object, seconds: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return True
        except (subprocess.CalledProcessError, ValueError, KeyError):
            pass  # not up yet
        time.sleep(step)
    return False


def _write(folder: Path) -> None:
    (folder / "flow.yml").write_text(FLOW)
    for name, text in NODES.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())


def test_a_dataflow_across_hosts_then_a_lost_daemon(hosts: Hosts) -> None:
    _write(hosts.folder)
    c = hosts.addresses["c"]
    hosts.start("c", "coordinator", "--bind", c, "--port", "6300", "--token-file", str(hosts.token_file))
    time.sleep(0.5)
    daemons = {m: hosts.start(m, "daemon", "--machine-id", m, "--retries", "20") for m in ("a", "b")}
    assert _wait(lambda: {d["machine_id"] for d in hosts.api("/daemons")} == {"a", "b"}, 20)  # type: ignore[attr-defined]
    addresses = {d["machine_id"]: d.get("hostname") for d in hosts.api("/daemons")}  # type: ignore[attr-defined]
    assert set(addresses) == {"a", "b"}

    # 0. Remote daemons prove themselves with the token, and a live daemon keeps its seat.
    wrong = hosts.folder / "wrong-token"
    wrong.write_text("not-the-token\n")
    wrong.chmod(0o600)
    refused = hosts.run("a", "daemon", "--machine-id", "x", "--retries", "0", "--token-file", str(wrong))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "refused the token" in refused.stderr
    taken = hosts.run("b", "daemon", "--machine-id", "a", "--retries", "0")
    assert taken.returncode == 2, taken.stdout + taken.stderr
    assert "already has a connected daemon" in taken.stderr
    seats = {d["machine_id"]: d["status"] for d in hosts.api("/daemons")}  # type: ignore[attr-defined]
    assert seats == {"a": "connected", "b": "connected"}

    # 1. Every message crosses a → b (Zenoh) → a (TCP).
    started = hosts.run("c", "start", "flow.yml", "--name", "across", "--detach", "--env", "COUNT=50")
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = started.stdout.strip().splitlines()[-1]

    def finished() -> bool:
        flow = hosts.api(f"/dataflows/{run_id}")
        return flow["status"] != "running"  # type: ignore[index]

    assert _wait(finished, 60)
    flow = hosts.api(f"/dataflows/{run_id}")
    assert flow["status"] == "finished", flow  # type: ignore[index]
    got = json.loads((hosts.folder / "sink.json").read_text())
    assert got == list(range(50))
    edges = {e["target"]: e for e in json.loads((hosts.folder / "out" / run_id / "edges.json").read_text())}
    assert edges["relay/x"]["backend"] == "zenoh"
    assert edges["sink/y"]["backend"] == "tcp"
    assert edges["relay/x"]["messages"] == 50
    assert edges["sink/y"]["messages"] == 50

    # 2. A long run; daemon b is killed; the coordinator says so within two heartbeats.
    started = hosts.run(
        "c", "start", "flow.yml", "--name", "long", "--detach", "--env", "COUNT=0", "--env", "OUT=long.json"
    )
    assert started.returncode == 0, started.stdout + started.stderr
    long_id = started.stdout.strip().splitlines()[-1]
    assert _wait(lambda: (hosts.folder / "long.json").exists(), 30)
    watcher = hosts.watch_lost("b")
    assert watcher.stdout is not None
    assert watcher.stdout.readline().strip() == "watching"
    killed_at = time.time()
    daemons["b"].send_signal(signal.SIGKILL)  # its nodes are orphans now: the fixture kills them
    seen_at = float(watcher.stdout.readline().strip() or "inf")
    # The coordinator checks every heartbeat/4: lost at most 2 heartbeats + 1/4 after the last
    # message; the watcher polls every 50 ms. One second of margin for a busy machine.
    assert seen_at - killed_at <= 2 * HEARTBEAT + 0.25 + 1.0, seen_at - killed_at
    flow = hosts.api(f"/dataflows/{long_id}")
    assert flow["status"] == "failed"  # type: ignore[index]
    assert "daemon b lost" in flow["reason"]  # type: ignore[index]
    assert "relay" in flow["reason"]  # type: ignore[index]
    assert flow["nodes"]["relay"]["state"] == "lost"  # type: ignore[index]
    assert flow["nodes"]["source"]["state"] != "lost"  # type: ignore[index]
