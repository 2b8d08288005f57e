"""The local daemon: spawns a dataflow's nodes, wires their links, watches them.

It is off the message hot path: it creates one ``SOCK_SEQPACKET`` socket pair
per (sender node, receiver node), hands each node its ends when the node
registers on the control socket, starts everyone once all nodes are ready,
and then only watches processes and relays stop requests.

Example::

    daemon = LocalDaemon(dataflow, run_id=new_run_id(), out_dir=Path("out/run"))
    daemon.start()
    results = daemon.wait()
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from doradus._dataflow import Dataflow, LogSource, NodeSource, NodeSpec, TimerSource
from doradus._logrecord import LEVEL_RANK, at_least, classify_line, make_record, normalize_level
from doradus._logstore import LogStore
from doradus._otel_env import enabled_signals
from doradus._paths import runs_dir
from doradus._protocol import ENV_CONFIG, LATENCY_BOUNDS_US, recv_control, send_control

if TYPE_CHECKING:
    from doradus._stdout_relay import StdoutRelay

LINK_BUFFER = 4 * 1024 * 1024
MAX_SOCKET_PATH = 100
TAIL_LINES = 20
COMPAT_PATH = str(Path(__file__).parent / "_compat")

RecordSink = Callable[[dict[str, Any]], None]
EARLY_LOG_RECORDS = 1_000
"""Records kept for log inputs until the dataflow starts."""


@dataclass(eq=False)
class Link:
    """One socket pair between a sender node and a receiver node."""

    sender: str
    receiver: str
    routes: dict[str, list[str]] = field(default_factory=dict)
    """Sender output id → receiver input ids."""
    send_end: socket.socket | None = None
    recv_end: socket.socket | None = None


@dataclass(eq=False)
class NodeProcess:
    """What the daemon knows about one node."""

    spec: NodeSpec
    popen: subprocess.Popen[bytes] | None = None
    conn: socket.socket | None = None
    registered: bool = False
    ready: bool = False
    """The node's links are open (subscriptions confirmed): the start may count it."""
    exited: bool = False
    returncode: int | None = None
    killed: bool = False
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    log: IO[str] | None = None
    log_lock: threading.Lock = field(default_factory=threading.Lock)
    readers: list[threading.Thread] = field(default_factory=list)
    links: list[tuple[dict[str, Any], socket.socket | None]] = field(default_factory=list)
    """(link description for the node, its socket end for ``shm`` links, else None)."""
    watched: bool = False
    """A reader thread owns ``conn`` (and closes it when the node has gone)."""
    stats: dict[str, Any] | None = None
    """The node's latest ``stats`` report (see `Node`), with rates computed on arrival."""
    _totals: tuple[float, int, int] | None = None
    """(monotonic time, messages received, messages sent) of the previous report."""

    def record_stats(self, message: dict[str, Any]) -> None:
        """Keep a ``stats`` report and derive the input and output rates since the previous one."""
        inputs = dict(message.get("inputs") or {})
        outputs = dict(message.get("outputs") or {})
        for input_id, entry in inputs.items():
            inp = self.spec.inputs.get(input_id)
            if inp is not None:
                entry["source"] = (
                    inp.source.source if not isinstance(inp.source, NodeSource) else str(inp.source)
                )
            if "latency_buckets" in entry:
                entry["latency_bounds_us"] = list(LATENCY_BOUNDS_US)
        received = sum(int(v.get("received", 0)) for v in inputs.values())
        sent = sum(int(v.get("sent", 0)) for v in outputs.values())
        now = time.monotonic()
        stats = {
            "input_rate": None,
            "output_rate": None,
            "dropped": sum(int(v.get("dropped", 0)) for v in inputs.values()),
            "queued": sum(int(v.get("queued", 0)) for v in inputs.values()),
            "p50_latency_us": message.get("latency_p50_us"),
            "errors": int(message.get("errors") or 0),
            "inputs": inputs,
            "outputs": outputs,
        }
        previous = self._totals
        if previous is not None and now - previous[0] > 0.05:
            span = now - previous[0]
            stats["input_rate"] = round(max(0, received - previous[1]) / span, 2)
            stats["output_rate"] = round(max(0, sent - previous[2]) / span, 2)
        elif self.stats is not None:  # two reports close together (e.g. the last, at exit)
            stats["input_rate"] = self.stats["input_rate"]
            stats["output_rate"] = self.stats["output_rate"]
        if previous is None or now - previous[0] > 0.05:
            self._totals = (now, received, sent)
        self.stats = stats

    @property
    def in_barrier(self) -> bool:
        """Whether the start waits for this node to register or exit.

        Not a node whose only output carries its stdout: the daemon sends those lines, so
        the node need not register (a program that never does and runs on would hold the
        start forever).
        """
        own = [o for o in self.spec.outputs if o != self.spec.send_stdout_as]
        return self.spec.kind != "dynamic" and bool(self.spec.inputs or own)


@dataclass(frozen=True)
class NodeResult:
    """How one node ended."""

    node_id: str
    returncode: int | None
    killed: bool
    tail: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Exited with status 0."""
        return self.returncode == 0


class LocalDaemon:
    """Runs one dataflow on this machine."""

    def __init__(
        self,
        dataflow: Dataflow,
        *,
        run_id: str,
        out_dir: Path,
        extra_env: dict[str, str] | None = None,
        on_record: RecordSink | None = None,
        log_level: str | None = None,
        machine: str | None = None,
        dataflow_name: str | None = None,
        placement: dict[str, str] | None = None,
        remote: dict[str, Any] | None = None,
    ) -> None:
        self.dataflow = dataflow
        self.run_id = run_id
        # Multi-machine runs: ``placement`` maps every node to its machine; this daemon runs those
        # placed on ``machine``. ``remote`` holds what the coordinator gathered from every daemon:
        # ``listen`` ("<receiver>|<backend>" -> host:port) and ``router`` (this machine's Zenoh router).
        self.placement = dict(placement or {})
        self.remote = dict(remote or {})
        self.machine = machine or socket.gethostname()
        self.nodes = {
            spec.id: NodeProcess(spec)
            for spec in dataflow.nodes
            if not self.placement or self.placement.get(spec.id) == self.machine
        }
        self.out_dir = out_dir
        self.extra_env = dict(extra_env or {})
        self.on_record = on_record
        self.log_level = normalize_level(log_level or "") or "INFO"
        self._specs = {spec.id: spec for spec in dataflow.nodes}
        # Without a level given, each node's comes from DORADUS_LOG_LEVEL in its dataflow env.
        self._levels = {
            spec.id: (None if log_level else normalize_level(spec.env.get("DORADUS_LOG_LEVEL", "")))
            or self.log_level
            for spec in dataflow.nodes
        }
        self.dataflow_name = dataflow_name or dataflow.name
        self.store = LogStore(out_dir)
        self.telemetry: Any = None
        self._subscribers = [
            (spec.id, input_id, normalize_level(inp.source.level or "") or "TRACE", inp.source.node)
            for spec in dataflow.nodes
            for input_id, inp in spec.inputs.items()
            if isinstance(inp.source, LogSource) and spec.id in self.nodes
        ]
        self._early: deque[dict[str, Any]] = deque(maxlen=EARLY_LOG_RECORDS)
        self._logs_closed: set[str] = set()
        self._record_lock = threading.Lock()
        self.edge_backends: dict[tuple[str, str], str] = {}
        """(sender, output) → the backend carrying its edges."""
        self.relays: dict[str, StdoutRelay] = {}
        """Node id → the `StdoutRelay` sending its stdout lines (``send_stdout_as``)."""
        self._listen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._started = False
        self._stopping = False
        self._closed = False
        self.rundir = Path(tempfile.mkdtemp(prefix=f"{run_id[:13]}-", dir=runs_dir()))
        self.control_path = str(self.rundir / "control.sock")
        self._short_dir: Path | None = None
        if len(self.control_path.encode()) > MAX_SOCKET_PATH:
            # Unix socket paths hold at most 107 bytes: a deep runtime folder gets a short,
            # equally private (0700) folder for the socket.
            self._short_dir = Path(tempfile.mkdtemp(prefix="doradus-"))
            self.control_path = str(self._short_dir / "c.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sampler = ProcessSampler()

    # ---------------------------------------------------------------- startup
    def start(self) -> None:
        """Create the links, open the control socket and spawn every node."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if enabled_signals():
            self.telemetry = _runtime_telemetry(self)
        self._listener.bind(self.control_path)
        self._listener.listen(64)
        if any(n.spec.kind == "dynamic" for n in self.nodes.values()):
            self._update_dynamic_file()
        self._make_links()
        threading.Thread(target=self._accept_loop, name="doradus-accept", daemon=True).start()
        for proc in self.nodes.values():
            if proc.spec.kind != "dynamic":
                self._spawn(proc)
        with self._lock:
            self._check_barrier()

    def _make_links(self) -> None:
        links: dict[tuple[str, str], Link] = {}
        for spec in self.dataflow.nodes:
            for input_id, inp in spec.inputs.items():
                if isinstance(inp.source, NodeSource):
                    key = (inp.source.node, spec.id)
                    link = links.setdefault(key, Link(*key))
                    link.routes.setdefault(inp.source.output, []).append(input_id)
        stdout_ends: dict[str, list[tuple[str, socket.socket]]] = {}
        for link in links.values():
            self._split_stdout(link, stdout_ends)
            here = (link.sender in self.nodes, link.receiver in self.nodes)
            if not any(here) or not link.routes:
                continue
            crossing = not all(here)
            backend = self.link_backend(self._specs[link.sender], remote=crossing)
            out = {"peer": link.receiver, "dir": "out", "outputs": sorted(link.routes), "backend": backend}
            inbound = {"peer": link.sender, "dir": "in", "routes": link.routes, "backend": backend}
            self.edge_backends.update({(link.sender, o): backend for o in link.routes})
            if crossing:
                out_options, in_options = self._remote_options(backend, link.receiver)
                if here[0]:
                    self.nodes[link.sender].links.append(({**out, "options": out_options}, None))
                else:
                    self.nodes[link.receiver].links.append(({**inbound, "options": in_options}, None))
                continue
            if backend == "shm":
                a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                for sock in (a, b):
                    _grow_buffer(sock)
                self.nodes[link.sender].links.append((out, a))
                self.nodes[link.receiver].links.append((inbound, b))
                continue
            out_options, in_options = self._network_options(backend, link.receiver)
            self.nodes[link.sender].links.append(({**out, "options": out_options}, None))
            self.nodes[link.receiver].links.append(({**inbound, "options": in_options}, None))
        self._open_relays(stdout_ends)

    def _relays_stdout(self, node_id: str) -> bool:
        """Whether this daemon sends the node's stdout lines: it has ``send_stdout_as``, we start it."""
        proc = self.nodes.get(node_id)
        return proc is not None and proc.spec.kind != "dynamic" and proc.spec.send_stdout_as is not None

    def _split_stdout(self, link: Link, ends: dict[str, list[tuple[str, socket.socket]]]) -> None:
        """Take a stdout output's routes off a link between two local nodes onto a link of its own.

        The daemon holds that link's sending end (see `doradus._stdout_relay`): it is a
        ``shm`` link whatever the node's backend, as the daemon and the reader share this
        machine. Readers on other machines keep the node's own link (see `NOT_APPLIED`).
        """
        output = self._specs[link.sender].send_stdout_as
        if not (output in link.routes and link.receiver in self.nodes and self._relays_stdout(link.sender)):
            return
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (a, b):
            _grow_buffer(sock)
        routes = {output: link.routes.pop(output)}
        inbound = {"peer": link.sender, "dir": "in", "routes": routes, "backend": "shm"}
        self.nodes[link.receiver].links.append((inbound, b))
        ends.setdefault(link.sender, []).append((link.receiver, a))
        self.edge_backends[(link.sender, output)] = "shm"

    def _open_relays(self, ends: dict[str, list[tuple[str, socket.socket]]]) -> None:
        if not ends:
            return
        from doradus._stdout_relay import StdoutRelay  # pyarrow, only for runs that need it

        for node_id, node_ends in ends.items():
            output = self._specs[node_id].send_stdout_as
            assert output is not None

            def failed(message: str, node_id: str = node_id) -> None:
                self.runtime_record("ERROR", message, node_id)

            self.relays[node_id] = StdoutRelay(node_id, output, node_ends, on_error=failed)

    def link_backend(self, sender: NodeSpec, *, remote: bool = False) -> str:
        """The backend of a sender's edges.

        On one machine: the node's ``communication`` (a name, or its
        ``local``), else the dataflow's ``local``, else ``shm``. Across
        machines: the node's ``remote``, else the dataflow's, else ``zenoh``.

        Example::

            daemon.link_backend(flow.node("camera"))   # 'shm'
        """
        key, default = ("remote", "zenoh") if remote else ("local", "shm")
        own = sender.communication
        if isinstance(own, str) and own and not remote:
            return own
        if isinstance(own, dict) and isinstance(own.get(key), str) and own[key]:
            return str(own[key])
        chosen = self.dataflow.communication.get(key)
        return str(chosen) if isinstance(chosen, str) and chosen else default

    def _remote_options(self, backend: str, receiver: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Options of a link crossing machines, from the endpoints the coordinator gathered.

        Zenoh links connect to this machine's router (routers of the run's machines are
        connected to each other); listening transports use the receiver's announced address.
        """
        settings = self.dataflow.communication.get(backend)
        common = dict(settings) if isinstance(settings, dict) else {}
        common["prefix"] = f"doradus/{self.run_id}/"
        if backend == "zenoh":
            # Nodes meet at their machine's router as Zenoh clients (peers behind a router
            # would need gossip, which stays off).
            router = str(self.remote.get("router") or "")
            return {**common, "connect": [router], "mode": "client"}, {
                **common,
                "connect": [router],
                "mode": "client",
            }
        address = str((self.remote.get("listen") or {}).get(f"{receiver}|{backend}", ""))
        return {**common, "connect": address}, {**common, "listen": address}

    def inbound_remote(self) -> list[tuple[str, str]]:
        """(receiver, backend) of each link that reaches a node of this machine from another machine.

        What this daemon must announce a listening address for (Zenoh needs none: it uses routers).

        Example::

            daemon.inbound_remote()   # [('detector', 'tcp')]
        """
        found = set()
        for spec in self.dataflow.nodes:
            if spec.id not in self.nodes:
                continue
            for inp in spec.inputs.values():
                if isinstance(inp.source, NodeSource) and inp.source.node not in self.nodes:
                    found.add((spec.id, self.link_backend(self._specs[inp.source.node], remote=True)))
        return sorted(found)

    def peer_gone(self, node_id: str) -> None:
        """A node on another machine ended: tell the local nodes that read it.

        Example::

            daemon.peer_gone("camera")
        """
        with self._lock:
            for other in self.nodes.values():
                if other.conn is None or other.exited:
                    continue
                if any(
                    isinstance(i.source, NodeSource) and i.source.node == node_id
                    for i in other.spec.inputs.values()
                ):
                    try:
                        send_control(other.conn, {"op": "peer_gone", "peer": node_id})
                    except OSError:
                        pass

    def _network_options(self, backend: str, receiver: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Options of a network link on this machine.

        The dataflow's settings for the backend, the run's topic prefix, and for listening
        transports the receiver's address (one per receiver and backend).
        """
        settings = self.dataflow.communication.get(backend)
        common = dict(settings) if isinstance(settings, dict) else {}
        common["prefix"] = f"doradus/{self.run_id}/"
        key = (receiver, backend)
        if key not in self._listen:
            self._listen[key] = _free_loopback_port()
        port = self._listen[key]
        if backend == "zenoh":
            endpoint = f"tcp/127.0.0.1:{port}"
            return {**common, "connect": [endpoint]}, {**common, "listen": [endpoint]}
        address = f"127.0.0.1:{port}"
        return {**common, "connect": address}, {**common, "listen": address}

    def _config(self, proc: NodeProcess) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        for input_id, inp in proc.spec.inputs.items():
            entry: dict[str, Any] = {"queue_size": inp.queue_size, "policy": inp.queue_policy}
            if isinstance(inp.source, TimerSource):
                entry.update(kind="timer", interval_ns=inp.source.interval_ns, source=inp.source.source)
            elif isinstance(inp.source, LogSource):
                entry.update(kind="logs", source=inp.source.source)
            else:
                entry.update(kind="node", source=str(inp.source))
                fmt = proc.spec.input_formats.get(input_id)
                if fmt is not None and fmt.name != "arrow":
                    entry["format"] = fmt.to_json()
            inputs[input_id] = entry
        return {
            "node_id": proc.spec.id,
            "run_id": self.run_id,
            "dataflow": str(self.dataflow.path),
            "dataflow_name": self.dataflow_name,
            "machine": self.machine,
            "inputs": inputs,
            "outputs": list(proc.spec.outputs),
            "output_formats": {
                o: f.to_json() for o, f in proc.spec.output_formats.items() if f.name != "arrow"
            },
            "links": [spec for spec, _sock in proc.links],
            "backends": sorted({str(spec.get("backend", "shm")) for spec, _sock in proc.links}),
            "restart_count": 0,
            # the daemon sends on it: the node itself may not (see `Node.send_output`)
            "stdout_output": proc.spec.send_stdout_as if self._relays_stdout(proc.spec.id) else None,
        }

    def _command(self, spec: NodeSpec) -> list[str]:
        if spec.kind == "python":
            return [sys.executable, str(spec.executable), *spec.args]
        if spec.kind == "operator":
            return [sys.executable, "-m", "doradus._operators", *spec.args]
        if spec.kind == "shell":
            return ["/bin/sh", "-c", " ".join(spec.args)]
        return [str(spec.executable), *spec.args]

    def _environment(self, spec: NodeSpec) -> dict[str, str]:
        env = dict(os.environ)
        env.update(spec.env)
        env.update(self.extra_env)
        env[ENV_CONFIG] = json.dumps(
            {"control": self.control_path, "node_id": spec.id, "run_id": self.run_id}
        )
        env["PYTHONPATH"] = os.pathsep.join(p for p in (COMPAT_PATH, env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env["DORADUS_RUN_ID"] = self.run_id
        env["DORADUS_NODE_ID"] = spec.id
        env["DORADUS_LOG_LEVEL"] = self._levels[spec.id]
        return env

    def _spawn(self, proc: NodeProcess) -> None:
        spec = proc.spec
        proc.log = open(self.out_dir / f"log_{spec.id}.txt", "w", encoding="utf-8")  # noqa: SIM115 - closed by the reader
        try:
            proc.popen = subprocess.Popen(
                self._command(spec),
                cwd=self.dataflow.working_dir,
                env=self._environment(spec),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            message = f"could not start node: {exc}"
            proc.tail.append(message)
            proc.log.write(message + "\n")
            proc.log.close()
            self.runtime_record("ERROR", message, spec.id, {"event": "failed"})
            relay = self.relays.get(spec.id)
            if relay is not None:
                relay.finish()  # no stdout will come: its readers' inputs close
            with self._lock:
                self._mark_exited(proc, 127)
            return
        self.runtime_record("INFO", f"started (pid {proc.popen.pid})", spec.id, {"event": "started"})
        if self.telemetry is not None:
            self.telemetry.node_started(spec.id, proc.popen.pid)
        for stream in ("stdout", "stderr"):
            reader = threading.Thread(
                target=self._pump, args=(proc, stream), name=f"{stream}-{spec.id}", daemon=True
            )
            proc.readers.append(reader)
            reader.start()
        threading.Thread(target=self._watch, args=(proc,), name=f"wait-{spec.id}", daemon=True).start()

    # ------------------------------------------------------------------ logs
    def record(self, record: dict[str, Any]) -> None:
        """Take one record of the run: fill in where it comes from, then store, pass on and export it.

        Records below their node's log level are dropped: the run's level
        when one was given, else ``DORADUS_LOG_LEVEL`` of the node's ``env``
        in the dataflow file, else INFO. Each goes to
        ``out/<run-id>/logs.jsonl``, to ``on_record``, to the OpenTelemetry
        log export when it is on, and to the nodes whose log inputs match.

        Example::

            daemon.record(make_record("WARN", "slow", node="camera"))
        """
        if not at_least(record, self._levels.get(record.get("node") or "", self.log_level)):
            return
        record["dataflow"] = self.dataflow_name
        record["run_id"] = self.run_id
        record["machine"] = self.machine
        with self._record_lock:  # the store, the terminal and the coordinator see one order
            self.store.write(record)
            if self.on_record is not None:
                self.on_record(record)
        if self.telemetry is not None:
            self.telemetry.emit(record)
        if self._subscribers:
            self._deliver(record)

    def runtime_record(
        self, level: str, message: str, node_id: str | None = None, fields: dict[str, Any] | None = None
    ) -> None:
        """A record of the runtime itself (``source: runtime``), e.g. a node started or failed.

        Example::

            daemon.runtime_record("ERROR", "failed: exit status 1", "camera")
        """
        self.record(make_record(level, message, node=node_id, source="runtime", fields=fields))

    def _node_record(self, proc: NodeProcess, record: Any) -> None:
        """A record a node sent over its control socket (its ``logging`` or ``node.log``)."""
        if not isinstance(record, dict):
            return
        clean = make_record(
            str(record.get("level") or "INFO"),
            str(record.get("message", "")),
            node=proc.spec.id,
            source="log",
            trace_id=record.get("trace_id") if isinstance(record.get("trace_id"), str) else None,
            span_id=record.get("span_id") if isinstance(record.get("span_id"), str) else None,
            fields=record.get("fields") if isinstance(record.get("fields"), dict) else None,
            timestamp=str(record["timestamp"]) if isinstance(record.get("timestamp"), str) else None,
        )
        if LEVEL_RANK[clean["level"]] >= LEVEL_RANK["WARN"]:
            proc.tail.append(f"{clean['level']} {clean['message']}")
        self._write_raw(proc, f"[{clean['level']}] {clean['message']}")
        self.record(clean)

    def _deliver(self, record: dict[str, Any]) -> None:
        with self._lock:
            if not self._started:
                self._early.append(record)
                return
            targets = [
                (self.nodes[node_id].conn, input_id)
                for node_id, input_id, level, only in self._subscribers
                if node_id != record.get("node")
                and input_id not in self._logs_closed
                and (only is None or only == record.get("node"))
                and at_least(record, level)
                and self.nodes[node_id].conn is not None
            ]
        for conn, input_id in targets:
            try:
                assert conn is not None
                send_control(conn, {"op": "log_input", "input": input_id, "record": record})
            except (OSError, ValueError):
                pass

    def _close_log_inputs(self) -> None:
        """Log inputs whose every possible writer has ended get closed (caller holds the lock)."""
        if not self._started:
            return
        for node_id, input_id, _level, only in self._subscribers:
            if input_id in self._logs_closed:
                continue
            proc = self.nodes[node_id]
            writers = [p for nid, p in self.nodes.items() if nid != node_id and (only is None or nid == only)]
            if all(p.exited for p in writers) and proc.conn is not None:
                self._logs_closed.add(input_id)
                try:
                    send_control(proc.conn, {"op": "logs_closed", "inputs": [input_id]})
                except OSError:
                    pass

    def _write_raw(self, proc: NodeProcess, line: str) -> None:
        with proc.log_lock:
            if proc.log is not None and not proc.log.closed:
                proc.log.write(line + "\n")
                proc.log.flush()

    # --------------------------------------------------------------- watching
    def _pump(self, proc: NodeProcess, stream: str) -> None:
        relay = self.relays.get(proc.spec.id) if stream == "stdout" else None
        try:
            self._read_lines(proc, stream, relay)
        finally:
            if relay is not None:
                relay.finish()  # every line is queued: it sends them, then its readers' inputs close

    def _read_lines(self, proc: NodeProcess, stream: str, relay: StdoutRelay | None) -> None:
        assert proc.popen is not None
        pipe = proc.popen.stdout if stream == "stdout" else proc.popen.stderr
        assert pipe is not None
        traceback: list[str] = []
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if relay is not None:
                relay.put(line, time.time_ns())
            proc.tail.append(line)
            self._write_raw(proc, line)
            if traceback:  # a Python traceback becomes one ERROR record, ending at its exception line
                traceback.append(line)
                if line[:1] not in (" ", "\t", "") and not line.startswith("During handling"):
                    self._emit_traceback(proc, stream, traceback)
                    traceback = []
                continue
            if line.startswith("Traceback (most recent call last):"):
                traceback = [line]
                continue
            level, message, fields = classify_line(line, stream)
            self.record(make_record(level, message, node=proc.spec.id, source=stream, fields=fields))
        if traceback:
            self._emit_traceback(proc, stream, traceback)

    def _emit_traceback(self, proc: NodeProcess, stream: str, lines: list[str]) -> None:
        self.record(make_record("ERROR", "\n".join(lines), node=proc.spec.id, source=stream))

    def _watch(self, proc: NodeProcess) -> None:
        assert proc.popen is not None
        code = proc.popen.wait()
        for reader in proc.readers:
            reader.join(timeout=5)
        with proc.log_lock:
            if proc.log is not None:
                proc.log.close()
        self._report_exit(proc, code)
        with self._lock:
            self._mark_exited(proc, code)

    def _report_exit(self, proc: NodeProcess, code: int) -> None:
        node_id = proc.spec.id
        if code == 0:
            self.runtime_record("INFO", "exited (status 0)", node_id, {"event": "exited", "exit_code": 0})
        elif code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            level = "WARN" if proc.killed else "ERROR"
            why = "stopped" if proc.killed else "failed"
            self.runtime_record(level, f"{why}: killed by {name}", node_id, {"event": why, "exit_code": code})
        else:
            self.runtime_record(
                "ERROR", f"failed: exit status {code}", node_id, {"event": "failed", "exit_code": code}
            )
        if self.telemetry is not None:
            self.telemetry.node_ended(node_id, code)

    def _mark_exited(self, proc: NodeProcess, code: int) -> None:
        proc.exited = True
        proc.returncode = code
        self._close_log_inputs()
        for _spec, sock in proc.links:
            if sock is not None:
                sock.close()  # peers of a node that never registered now see their inputs close
        proc.links.clear()
        self._tell_peers_gone(proc)
        if proc.conn is not None:
            try:
                proc.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if not proc.watched:  # else the reader closes it once it has read the last report
                proc.conn.close()
            proc.conn = None
        self._check_barrier()
        self._changed.notify_all()

    def _tell_peers_gone(self, proc: NodeProcess) -> None:
        """Receivers reading ``proc`` over a network backend learn that it ended (caller holds the lock).

        Shared-memory receivers see their socket close; a broker or a topic does not say it.
        """
        for other in self.nodes.values():
            if other is proc or other.conn is None or other.exited:
                continue
            if any(
                isinstance(inp.source, NodeSource)
                and inp.source.node == proc.spec.id
                and self.edge_backends.get((proc.spec.id, inp.source.output), "shm") != "shm"
                for inp in other.spec.inputs.values()
            ):
                try:
                    send_control(other.conn, {"op": "peer_gone", "peer": proc.spec.id})
                except OSError:
                    pass

    def _watch_conn(self, proc: NodeProcess, conn: socket.socket) -> None:
        """Read a node's control messages (its ``stats`` reports) until the connection ends.

        A dynamic node is not our child: its control socket closing means it ended.
        A spawned node's connection is closed by `_mark_exited` when its process exits.
        """
        while True:
            try:
                message, fds = recv_control(conn)
            except (OSError, ValueError):
                message, fds = None, []
            for fd in fds:
                os.close(fd)
            if message is None:
                break
            op = message.get("op")
            if op == "ready":
                with self._lock:
                    proc.ready = True
                    self._check_barrier()
                    self._changed.notify_all()
            elif op == "log":
                self._node_record(proc, message.get("record"))
            elif op == "stats":
                with self._lock:
                    proc.record_stats(message)
        conn.close()
        if proc.spec.kind != "dynamic":
            return
        with self._lock:
            if not proc.exited:
                proc.conn = None
                self._mark_exited(proc, 0)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _addr = self._listener.accept()
            except OSError:
                return
            try:
                self._register(conn)
            except OSError:
                conn.close()

    def _register(self, conn: socket.socket) -> None:
        message, fds = recv_control(conn)
        for fd in fds:
            os.close(fd)
        if message is None or message.get("op") != "register":
            conn.close()
            return
        node_id = str(message.get("node_id"))
        with self._lock:
            proc = self.nodes.get(node_id)
            problem = self._registration_problem(proc, node_id, bool(message.get("dynamic")))
            if problem or proc is None:
                send_control(conn, {"op": "error", "message": problem})
                conn.close()
                return
            socks = [sock for _spec, sock in proc.links if sock is not None]
            send_control(conn, {"op": "config", "config": self._config(proc)}, [s.fileno() for s in socks])
            for sock in socks:
                sock.close()
            proc.links.clear()
            proc.conn = conn
            proc.registered = True
            proc.watched = True
            threading.Thread(
                target=self._watch_conn, args=(proc, conn), name=f"control-{node_id}", daemon=True
            ).start()
            if proc.spec.kind == "dynamic":
                self._update_dynamic_file()
            if self._stopping:
                send_control(conn, {"op": "stop"})
            elif self._started:
                send_control(conn, {"op": "start"})
            self._check_barrier()
            self._changed.notify_all()

    def _registration_problem(self, proc: NodeProcess | None, node_id: str, dynamic: bool) -> str | None:
        if proc is None:
            return f"the dataflow has no node {node_id!r}"
        if proc.registered or proc.exited:
            return f"node {node_id!r} is already running in this dataflow"
        if dynamic and proc.spec.kind != "dynamic":
            return f"node {node_id!r} is not declared `path: dynamic`, so Doradus starts it itself"
        return None

    def _update_dynamic_file(self) -> None:
        waiting = [n.spec.id for n in self.nodes.values() if n.spec.kind == "dynamic" and not n.registered]
        path = self.rundir / "dynamic.json"
        path.write_text(
            json.dumps({"dataflow": str(self.dataflow.path), "nodes": waiting, "control": self.control_path})
        )

    def _check_barrier(self) -> None:
        if self._started:
            return
        if all(p.ready or p.exited for p in self.nodes.values() if p.in_barrier):
            self._started = True
            for relay in self.relays.values():
                relay.dataflow_started()
            for proc in self.nodes.values():
                if proc.conn is not None:
                    send_control(proc.conn, {"op": "stop" if self._stopping else "start"})
            early = list(self._early)
            self._early.clear()
            if early:
                threading.Thread(target=self._deliver_early, args=(early,), daemon=True).start()
            self._close_log_inputs()

    def _deliver_early(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self._deliver(record)

    # ------------------------------------------------------------ stop & wait
    def request_stop(self) -> None:
        """Send Stop to every node (those not yet registered get it on registration)."""
        with self._lock:
            self._stopping = True
            for proc in self.nodes.values():
                if proc.conn is not None and not proc.exited:
                    try:
                        send_control(proc.conn, {"op": "stop"})
                    except OSError:
                        pass
            self._changed.notify_all()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal every node's process group that is still running."""
        with self._lock:
            procs = [p for p in self.nodes.values() if p.popen is not None and not p.exited]
        for proc in procs:
            assert proc.popen is not None
            try:
                os.killpg(proc.popen.pid, sig)
                proc.killed = True
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every node has ended; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._all_done_locked():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def _all_done_locked(self) -> bool:
        for proc in self.nodes.values():
            if proc.exited:
                continue
            if proc.spec.kind == "dynamic" and not proc.registered and self._stopping:
                continue
            return False
        return True

    def results(self) -> list[NodeResult]:
        """How each node ended, in dataflow order."""
        return [NodeResult(p.spec.id, p.returncode, p.killed, tuple(p.tail)) for p in self.nodes.values()]

    def node_metrics(self) -> dict[str, dict[str, Any]]:
        """The latest state and metrics of every node, keyed by node id.

        Per node: ``state`` (``starting``, ``running``, ``exited``, ``failed``),
        ``pid``, ``exit_code``, ``input_rate`` and ``output_rate`` (messages/s
        over the last report interval, summed over inputs/outputs),
        ``dropped`` and ``queued`` (totals over inputs), ``p50_latency_us``,
        ``errors``, ``restarts`` (0), ``cpu_percent`` and ``memory_bytes`` (the
        process and its children, via psutil), and once the node has reported,
        ``inputs`` and ``outputs`` (per input: source, received, dropped,
        queued, latency histogram; per output: sent, bytes). Values not
        measured yet are ``None``. Rates come from the nodes' reports, sent every second.

        Example::

            daemon.node_metrics()["camera"]["output_rate"]   # e.g. 30.0
        """
        with self._lock:
            snapshot = [
                (
                    node_id,
                    p.popen.pid if p.popen is not None else None,
                    p.exited,
                    p.returncode,
                    p.registered,
                    dict(p.stats) if p.stats else None,
                )
                for node_id, p in self.nodes.items()
            ]
        metrics: dict[str, dict[str, Any]] = {}
        for node_id, pid, exited, code, registered, stats in snapshot:
            if exited:
                state = "exited" if code == 0 else "failed"
            else:
                state = "running" if registered else "starting"
            entry: dict[str, Any] = {
                "state": state,
                "pid": pid,
                "exit_code": code if exited else None,
                "input_rate": None,
                "output_rate": None,
                "dropped": None,
                "queued": None,
                "p50_latency_us": None,
                "errors": None,
                "restarts": 0,
                "cpu_percent": None,
                "memory_bytes": None,
            }
            if stats is not None:
                for key in ("input_rate", "output_rate", "dropped", "queued", "p50_latency_us", "errors"):
                    entry[key] = stats[key]
                entry["inputs"] = stats["inputs"]
                entry["outputs"] = stats["outputs"]
            if exited:
                entry["input_rate"] = entry["output_rate"] = 0.0
                entry["queued"] = 0 if stats is not None else None
            elif pid is not None:
                entry.update(self._sampler.sample(pid))
            metrics[node_id] = entry
        return metrics

    def edges(self) -> list[dict[str, Any]]:
        """One record per edge: which backend carried it and what went through.

        ``source`` is ``node/output`` (or the timer or log source), ``target``
        ``node/input``; ``messages`` and ``dropped`` are what the receiving
        input counted (arrivals, and drops by its queue policy), ``bytes`` what
        the source output sent (every message goes to each of its edges).

        Example::

            daemon.edges()[0]["backend"]   # 'shm'
        """
        with self._lock:
            stats = {node_id: dict(p.stats) if p.stats else {} for node_id, p in self.nodes.items()}
        result = []
        for spec in self.dataflow.nodes:
            if spec.id not in stats:
                continue  # runs on another machine: its daemon reports its edges
            inputs = stats[spec.id].get("inputs") or {}
            for input_id, inp in spec.inputs.items():
                counters = inputs.get(input_id) or {}
                source = inp.source
                if isinstance(source, NodeSource):
                    backend = self.edge_backends.get(
                        (source.node, source.output), self.link_backend(self._specs[source.node])
                    )
                    sent = (stats.get(source.node, {}).get("outputs") or {}).get(source.output) or {}
                    size = int(sent.get("bytes", 0))
                    relay = self.relays.get(source.node)
                    if relay is not None and relay.output == source.output:
                        size = relay.bytes  # stdout lines: the daemon sent them, not the node
                else:
                    backend = "timer" if isinstance(source, TimerSource) else "logs"
                    size = 0
                result.append(
                    {
                        "source": str(source) if isinstance(source, NodeSource) else source.source,
                        "target": f"{spec.id}/{input_id}",
                        "backend": backend,
                        "messages": int(counters.get("received", 0)),
                        "bytes": size,
                        "dropped": int(counters.get("dropped", 0)),
                    }
                )
        return result

    def write_edges(self) -> Path:
        """Write `edges` to ``out/<run-id>/edges.json``; returns the file.

        On a multi-machine run sharing one folder, each daemon merges its
        edges (by target) into the file under a lock.

        Example::

            daemon.write_edges()   # PosixPath('out/01J.../edges.json')
        """
        import fcntl

        path = self.out_dir / "edges.json"
        mine = self.edges()
        folder = os.open(self.out_dir, os.O_RDONLY)  # the lock: the run folder itself
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            merged: dict[str, dict[str, Any]] = {}
            if self.placement and path.exists():
                try:
                    merged = {e["target"]: e for e in json.loads(path.read_text())}
                except (ValueError, KeyError, TypeError):
                    merged = {}
            merged.update({e["target"]: e for e in mine})
            path.write_text(json.dumps(list(merged.values()), indent=2) + "\n")
        finally:
            os.close(folder)
        return path

    def close(self) -> None:
        """Release the control socket and the private runtime folder; flush logs and telemetry.

        Writes ``out/<run-id>/edges.json`` first.
        """
        if not self._closed:
            try:
                self.write_edges()
            except OSError:
                pass
        self._closed = True
        for relay in self.relays.values():
            relay.abort()
        self.store.close()
        if self.telemetry is not None:
            self.telemetry.shutdown()
        try:
            self._listener.close()
        except OSError:
            pass
        for proc in self.nodes.values():
            for _spec, sock in proc.links:
                if sock is not None:
                    sock.close()
            if proc.conn is not None:
                try:
                    proc.conn.shutdown(socket.SHUT_RDWR)  # wakes its reader thread
                except OSError:
                    pass
                proc.conn.close()
        shutil.rmtree(self.rundir, ignore_errors=True)
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)


class ProcessSampler:
    """CPU % and resident memory of a process and its children, via psutil.

    ``psutil.Process`` objects are cached per pid, so CPU % is measured
    between two calls (the first call of a pid reports 0.0).

    Example::

        sampler = ProcessSampler()
        sampler.sample(os.getpid())   # {"cpu_percent": 0.0, "memory_bytes": 41943040}
    """

    def __init__(self) -> None:
        self._procs: dict[int, Any] = {}
        self._lock = threading.Lock()

    def sample(self, pid: int) -> dict[str, Any]:
        """``{"cpu_percent": ..., "memory_bytes": ...}``, or ``{}`` if the process is gone.

        Example::

            ProcessSampler().sample(os.getpid())["memory_bytes"] > 0   # True
        """
        psutil: Any = importlib.import_module("psutil")  # untyped; a core dependency
        with self._lock:
            try:
                proc = self._procs.get(pid)
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                # cached children too: cpu_percent measures since the previous call on that object
                family = [proc, *(self._procs.setdefault(c.pid, c) for c in proc.children(recursive=True))]
                cpu = 0.0
                memory = 0
                for member in family:
                    try:
                        cpu += member.cpu_percent(None)
                        memory += member.memory_info().rss
                    except psutil.Error:
                        pass
                return {"cpu_percent": round(cpu, 1), "memory_bytes": memory}
            except psutil.Error:
                self._procs.pop(pid, None)
                return {}


def _grow_buffer(sock: socket.socket) -> None:
    force = getattr(socket, "SO_SNDBUFFORCE", None)
    try:
        if force is not None:
            sock.setsockopt(socket.SOL_SOCKET, force, LINK_BUFFER)
            return
    except OSError:
        pass
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LINK_BUFFER)
    except OSError:
        pass


def _runtime_telemetry(daemon: LocalDaemon) -> Any:
    """The run's OpenTelemetry export, or None with a warning when its packages are missing."""
    try:
        from doradus._telemetry import RuntimeTelemetry
    except ImportError as exc:
        daemon.runtime_record(
            "WARN",
            f"OpenTelemetry export is configured but its packages are missing ({exc}): "
            "pip install 'doradus[telemetry]'",
        )
        return None
    telemetry = RuntimeTelemetry.create(
        dataflow=daemon.dataflow_name, run_id=daemon.run_id, machine=daemon.machine
    )
    if telemetry is not None:
        telemetry.observe_nodes(daemon.node_metrics)
    return telemetry


def _free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the receiving node binds it a moment later)."""
    return free_port("127.0.0.1")


def free_port(host: str) -> int:
    """A TCP port free on ``host`` right now (its user binds it a moment later).

    Example::

        free_port("127.0.0.1")   # 43121
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _crossing(flow: Dataflow, placement: dict[str, str], machine: str) -> list[tuple[str, str, bool]]:
    """(sender, receiver, receiver here) of each node-to-node pair with one end on ``machine``."""
    pairs = set()
    for spec in flow.nodes:
        for inp in spec.inputs.values():
            if isinstance(inp.source, NodeSource):
                a, b = placement.get(inp.source.node), placement.get(spec.id)
                if a != b and machine in (a, b):
                    pairs.add((inp.source.node, spec.id, b == machine))
    return sorted(pairs)


def _remote_backend(flow: Dataflow, sender: NodeSpec) -> str:
    own = sender.communication
    if isinstance(own, dict) and isinstance(own.get("remote"), str) and own["remote"]:
        return str(own["remote"])
    chosen = flow.communication.get("remote")
    return str(chosen) if isinstance(chosen, str) and chosen else "zenoh"


def inbound_remote(flow: Dataflow, placement: dict[str, str], machine: str) -> list[tuple[str, str]]:
    """(receiver, backend) of each link reaching a node on ``machine`` from another machine.

    Example::

        inbound_remote(flow, {"camera": "robot", "detector": "gpu"}, "gpu")   # [('detector', 'zenoh')]
    """
    return sorted(
        {
            (b, _remote_backend(flow, flow.node(a)))
            for a, b, here in _crossing(flow, placement, machine)
            if here
        }
    )


def uses_zenoh_across(flow: Dataflow, placement: dict[str, str], machine: str) -> bool:
    """Whether a link between ``machine`` and another machine travels on Zenoh.

    Example::

        uses_zenoh_across(flow, {"camera": "robot", "detector": "gpu"}, "gpu")   # True
    """
    return any(
        _remote_backend(flow, flow.node(a)) == "zenoh" for a, _b, _h in _crossing(flow, placement, machine)
    )
