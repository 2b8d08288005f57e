"""The local daemon: spawns a dataflow's nodes, wires their links, watches them.

It is off the message hot path: it creates one ``SOCK_SEQPACKET`` socket pair
per (sender node, receiver node), hands each node its ends when the node
registers on the control socket, starts everyone once all nodes are ready,
and then only watches processes and relays stop requests.

Nodes are started by the run's keeper (`doradus._unsafe.process`): nothing of a run
outlives its daemon, whatever kills the daemon. One thread reads every node's stdout and
stderr and the keeper's reports (a node has ended when its process has, whoever still
holds its pipes); each registered node has a thread reading its control socket.

Example::

    daemon = LocalDaemon(dataflow, run_id=new_run_id(), out_dir=Path("out/run"))
    daemon.start()
    results = daemon.wait()
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from doradus._dataflow.model import Dataflow, LogSource, NodeSource, NodeSpec, TimerSource
from doradus._exceptions import ResourceLimitError
from doradus._observability.latency import LATENCY_BOUNDS_US
from doradus._observability.otel_env import enabled_signals
from doradus._observability.records import LEVEL_RANK, at_least, classify_line, make_record, normalize_level
from doradus._observability.store import LogStore
from doradus._paths import clean_stale_runs, new_run_folder, new_socket_folder
from doradus._unsafe.process import Exited, Keeper, Spawned, SpawnFailed
from doradus._wire.control import ENV_CONFIG

# The untyped control transport, until the runtime builds and reads the typed messages (ControlMessage).
from doradus._wire.control import recv_json as recv_control
from doradus._wire.control import send_json as send_control

if TYPE_CHECKING:
    from doradus._runtime.stdout_relay import StdoutRelay

LINK_BUFFER = 4 * 1024 * 1024
MAX_SOCKET_PATH = 100
TAIL_LINES = 20
COMPAT_PATH = str(Path(__file__).parent.parent / "_compat")

RecordSink = Callable[[dict[str, Any]], None]
EARLY_LOG_RECORDS = 1_000
"""Records kept for log inputs until the dataflow starts."""
KILL_AFTER_TERM = 2.0
DESCRIPTOR_FILE = "dataflow.yml"
"""The copy of the dataflow's text in each run folder."""
"""Seconds between SIGTERM and SIGKILL: for nodes past their grace, and at the end of a run
for what is left in the nodes' process groups (helpers a node started)."""
ORPHAN_GRACE = 1.0
"""Seconds between SIGTERM and SIGKILL when the daemon died and its keeper ends the nodes."""
FILES_PER_NODE = 4
"""Descriptors the daemon holds per running node: stdout, stderr, log file, control socket."""
FILES_RESERVED = 64
"""Descriptors kept for the daemon itself beyond those open at the start (store, sockets, keeper)."""
MIB = 2**20
MEMORY_PER_NODE = {"python": 25 * MIB, "operator": 25 * MIB, "executable": 4 * MIB, "shell": 1 * MIB}
"""A rough low estimate of a node's own memory by kind (an idle Python node with pyarrow: ~25 MiB)."""
READ_CHUNK = 65536
DRAIN_CHUNKS = 32
"""Chunks read at most when draining a pipe: more than a pipe holds (1 MiB at most), but a
helper writing without end cannot keep the reader draining forever."""
MAX_LINE = 1 << 20
"""A longer run of output without a newline is cut into lines of this many bytes."""
PAUSE_CHECK = 0.02
"""Seconds between two looks at paused stdout pipes (their relay was full)."""
DROP_POLICY = "drop_oldest"
"""The queue policy applied (``backpressure`` is not applied yet: see `NOT_APPLIED`)."""
_node_files: int | None = None
"""The soft descriptor limit this process had before `raise_open_file_limit`: the one nodes get."""


@dataclass(frozen=True)
class InputDrops:
    """Messages an input's full queue dropped over a run.

    Example:
        >>> InputDrops("detector", "image", "camera/frame", 12, 1).message
        'input detector/image dropped 12 messages (queue_size 1, drop_oldest)'
    """

    node: str
    input: str
    source: str
    dropped: int
    queue_size: int

    @property
    def message(self) -> str:
        """One line saying which input dropped how many messages, and why."""
        return (
            f"input {self.node}/{self.input} dropped {self.dropped} messages "
            f"(queue_size {self.queue_size}, {DROP_POLICY})"
        )


@dataclass(eq=False)
class _Pipe:
    """One of a node's output pipes (stdout or stderr), read by the daemon's I/O thread."""

    proc: NodeProcess
    stream: str
    fd: int
    relay: StdoutRelay | None = None
    """Where stdout lines also go (``send_stdout_as``), until the node exits."""
    partial: bytes = b""
    traceback: list[str] = field(default_factory=list)
    """A Python traceback being gathered into one record."""
    registered: bool = False


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
    pid: int | None = None
    """The node's process id (also its process group's), once started."""
    pipes: list[_Pipe] = field(default_factory=list)
    """Its stdout and stderr pipes still open (a helper it started may hold them after it exits)."""
    conn: socket.socket | None = None
    requested: bool = False
    """The keeper was asked to start it."""
    answered: bool = False
    """The request was answered: started, or failed."""
    registered: bool = False
    ready: bool = False
    """The node's links are open (subscriptions confirmed): the start may count it."""
    exited: bool = False
    returncode: int | None = None
    killed: bool = False
    signalled: set[int] = field(default_factory=set)
    """Signals `LocalDaemon.kill` sent it."""
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    log: IO[str] | None = None
    log_lock: threading.Lock = field(default_factory=threading.Lock)
    readers: list[threading.Thread] = field(default_factory=list)
    """Threads reading its control socket."""
    links: list[tuple[dict[str, Any], socket.socket | None]] = field(default_factory=list)
    """(link description for the node, its socket end for links of socket pairs, else None)."""
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
        # ``listen`` ("<receiver>|<backend>" -> host:port) and ``router`` (see `Backend.machine_router`).
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
        clean_stale_runs()  # what runs killed with their keeper left (their supervisor has gone)
        self.rundir = new_run_folder(run_id)
        self.control_path = str(self.rundir / "control.sock")
        self._short_dir: Path | None = None
        if len(self.control_path.encode()) > MAX_SOCKET_PATH:
            # Unix socket paths hold at most 107 bytes: a deep runtime folder gets a short,
            # equally private (0700) folder for the socket.
            self._short_dir = new_socket_folder()
            self.control_path = str(self._short_dir / "c.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sampler = ProcessSampler()
        self._keeper: Keeper | None = None
        self._unanswered = 0
        """Spawn requests the keeper has not answered yet."""
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._io_thread: threading.Thread | None = None
        self._io_stop = False
        self._ending = False
        """The run is ending: the keeper's end is expected."""
        self._paused: list[_Pipe] = []

    # ---------------------------------------------------------------- startup
    def start(self) -> None:
        """Check the machine's limits, create the links, open the control socket and spawn every node.

        Raises:
            ResourceLimitError: The run needs more descriptors or memory than the machine
                gives; nothing was started.
        """
        node_files, _hard = raise_open_file_limit()
        self.check_resources()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # The text this run started from, for its nodes (`dataflow_descriptor()`, operators): the
        # file may have changed since, or live on another machine.
        (self.out_dir / DESCRIPTOR_FILE).write_text(self.dataflow.text, encoding="utf-8")
        if enabled_signals():
            self.telemetry = _runtime_telemetry(self)
        self._listener.bind(self.control_path)
        self._listener.listen(128)
        if any(n.spec.kind == "dynamic" for n in self.nodes.values()):
            self._update_dynamic_file()
        self._make_links()
        folders = [str(self.rundir), *([str(self._short_dir)] if self._short_dir else [])]
        self._keeper = Keeper.start(node_files=node_files, orphan_grace=ORPHAN_GRACE, remove=folders)
        self._selector.register(self._keeper.fileno(), selectors.EVENT_READ, self._keeper)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._io_thread = threading.Thread(target=self._io_loop, name="doradus-io", daemon=True)
        self._io_thread.start()
        threading.Thread(target=self._accept_loop, name="doradus-accept", daemon=True).start()
        for proc in self.nodes.values():
            if proc.spec.kind != "dynamic":
                self._spawn(proc)
        with self._lock:
            while self._unanswered:  # the keeper answers each request (or the I/O thread fails it)
                self._changed.wait()
            self._check_barrier()

    def check_resources(self) -> None:
        """Fail early when this machine cannot hold the run: memory and descriptors.

        Memory: a rough low estimate per node (`MEMORY_PER_NODE`) against the memory
        available (the machine's: a container's own limit is not read). Descriptors:
        `FILES_PER_NODE` per node, two per link between nodes here, and those of the daemon
        itself, against the limit (``ulimit -n``; see `raise_open_file_limit`). Nothing is
        started yet when this raises.

        Raises:
            ResourceLimitError: Naming the limit, the numbers and the fix.

        Example::

            daemon.check_resources()   # ResourceLimitError: this dataflow needs about 464 open files...
        """
        spawned = [p.spec for p in self.nodes.values() if p.spec.kind != "dynamic"]
        psutil: Any = importlib.import_module("psutil")  # untyped; a core dependency
        available = int(psutil.virtual_memory().available)
        counts: dict[str, int] = {}
        for spec in spawned:
            counts[spec.kind] = counts.get(spec.kind, 0) + 1
        estimate = sum(MEMORY_PER_NODE.get(kind, 0) * n for kind, n in counts.items())
        if estimate > available:
            parts = ", ".join(
                f"{n} {kind} nodes of {MEMORY_PER_NODE[kind] // MIB} MiB"
                for kind, n in sorted(counts.items())
                if kind in MEMORY_PER_NODE
            )
            raise ResourceLimitError(
                f"this dataflow's {len(spawned)} nodes need about {estimate // MIB} MiB ({parts}), "
                f"more than the {available // MIB} MiB of memory available on this machine; nothing "
                "was started. Run fewer nodes here: place some on another machine "
                "(`deploy: {machine: NAME}`), or merge Python nodes into one node with `operators`",
                limit="memory",
            )
        limit, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        needed, detail = self._descriptors_needed(len(spawned))
        if needed > limit:
            which = f"the hard limit of {limit}" if limit == hard else f"the limit of {limit}"
            raise ResourceLimitError(
                f"this dataflow needs about {needed} open files ({detail}), more than {which} "
                f"(`ulimit -n`); nothing was started. Raise it in the shell that starts doradus: "
                f"`ulimit -n {needed}` (past the hard limit, `ulimit -Hn`, only root can: set `nofile` "
                "in /etc/security/limits.conf, or LimitNOFILE= for a systemd service)",
                limit="RLIMIT_NOFILE",
            )

    def _descriptors_needed(self, spawned: int) -> tuple[int, str]:
        """Descriptors the daemon holds at once with every node running, and how they add up."""
        pairs = {
            (inp.source.node, spec.id)
            for spec in self.dataflow.nodes
            for inp in spec.inputs.values()
            if isinstance(inp.source, NodeSource) and {inp.source.node, spec.id} <= self.nodes.keys()
        }
        try:
            open_now = len(os.listdir("/proc/self/fd"))
        except OSError:
            open_now = 16
        needed = FILES_PER_NODE * spawned + 2 * len(pairs) + open_now + FILES_RESERVED
        detail = f"{FILES_PER_NODE} per node for {spawned} nodes"
        if pairs:
            detail += f", {2 * len(pairs)} link ends"
        return needed, f"{detail}, {open_now + FILES_RESERVED} for the runtime itself"

    def _make_links(self) -> None:
        from doradus.backends import backend_class

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
            if backend_class(backend).uses_socket_pairs:
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

        The daemon holds that link's sending end (see `doradus._runtime.stdout_relay`): it is a
        link of the relay's own backend (socket pairs) whatever the node's backend, as the daemon
        and the reader share this machine. Readers on other machines keep the node's own link
        (see `NOT_APPLIED`).
        """
        output = self._specs[link.sender].send_stdout_as
        if not (output in link.routes and link.receiver in self.nodes and self._relays_stdout(link.sender)):
            return
        from doradus.backends._shm import ShmBackend  # what `StdoutRelay` sends with

        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (a, b):
            _grow_buffer(sock)
        routes = {output: link.routes.pop(output)}
        inbound = {"peer": link.sender, "dir": "in", "routes": routes, "backend": ShmBackend.name}
        self.nodes[link.receiver].links.append((inbound, b))
        ends.setdefault(link.sender, []).append((link.receiver, a))
        self.edge_backends[(link.sender, output)] = ShmBackend.name

    def _open_relays(self, ends: dict[str, list[tuple[str, socket.socket]]]) -> None:
        if not ends:
            return
        from doradus._runtime.stdout_relay import StdoutRelay  # pyarrow, only for runs that need it

        for node_id, node_ends in ends.items():
            output = self._specs[node_id].send_stdout_as
            assert output is not None

            def failed(message: str, node_id: str = node_id) -> None:
                self.runtime_record("ERROR", message, node_id)

            self.relays[node_id] = StdoutRelay(node_id, output, node_ends, on_error=failed)

    def link_backend(self, sender: NodeSpec, *, remote: bool = False) -> str:
        """The backend of a sender's edges.

        On one machine: the node's ``communication`` (a name, or its
        ``local``), else the dataflow's ``local``, else
        `doradus.backends.DEFAULT_LOCAL_BACKEND`. Across machines: the node's
        ``remote``, else the dataflow's, else `DEFAULT_REMOTE_BACKEND`.

        Example::

            daemon.link_backend(flow.node("camera"))   # 'shm'
        """
        if remote:
            return _remote_backend(self.dataflow, sender)
        from doradus.backends import DEFAULT_LOCAL_BACKEND

        own = sender.communication
        if isinstance(own, str) and own:
            return own
        if isinstance(own, dict) and isinstance(own.get("local"), str) and own["local"]:
            return str(own["local"])
        chosen = self.dataflow.communication.get("local")
        return str(chosen) if isinstance(chosen, str) and chosen else DEFAULT_LOCAL_BACKEND

    def _remote_options(self, backend: str, receiver: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Options of a link crossing machines, from the endpoints the coordinator gathered.

        A backend with a `Backend.machine_router` reaches this machine's router (routers of the
        run's machines are connected to each other); others use the address the receiver's
        machine announced (`Backend.link_options`).
        """
        from doradus.backends import backend_class

        settings = self.dataflow.communication.get(backend)
        common = dict(settings) if isinstance(settings, dict) else {}
        common["prefix"] = f"doradus/{self.run_id}/"
        declared = backend_class(backend)
        if declared.machine_router:
            return declared.router_link_options(common, str(self.remote.get("router") or ""))
        address = str((self.remote.get("listen") or {}).get(f"{receiver}|{backend}", ""))
        host, _, port = address.rpartition(":")
        return declared.link_options(common, host, int(port or 0))

    def inbound_remote(self) -> list[tuple[str, str]]:
        """(receiver, backend) of each link that reaches a node of this machine from another machine.

        What this daemon must announce a listening address for (a backend with a
        `Backend.machine_router` needs none: it uses routers).

        Example::

            daemon.inbound_remote()   # [('detector', 'tcp')]
        """
        from doradus.backends import backend_class

        found = set()
        for spec in self.dataflow.nodes:
            if spec.id not in self.nodes:
                continue
            for inp in spec.inputs.values():
                if isinstance(inp.source, NodeSource) and inp.source.node not in self.nodes:
                    found.add((spec.id, self.link_backend(self._specs[inp.source.node], remote=True)))
        return sorted((r, b) for r, b in found if not backend_class(b).machine_router)

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
        """Options of a network link on this machine (`Backend.link_options`).

        The dataflow's settings for the backend, the run's topic prefix, and the receiver's
        loopback address (one per receiver and backend).
        """
        from doradus.backends import backend_class

        settings = self.dataflow.communication.get(backend)
        common = dict(settings) if isinstance(settings, dict) else {}
        common["prefix"] = f"doradus/{self.run_id}/"
        key = (receiver, backend)
        if key not in self._listen:
            self._listen[key] = _free_loopback_port()
        return backend_class(backend).link_options(common, "127.0.0.1", self._listen[key])

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
            "descriptor": str(self.out_dir / DESCRIPTOR_FILE),
            "dataflow_name": self.dataflow_name,
            "machine": self.machine,
            "inputs": inputs,
            "outputs": list(proc.spec.outputs),
            "output_formats": {
                o: f.to_json() for o, f in proc.spec.output_formats.items() if f.name != "arrow"
            },
            "links": [spec for spec, _sock in proc.links],
            "backends": sorted({str(spec["backend"]) for spec, _sock in proc.links}),
            "restart_count": 0,
            # the daemon sends on it: the node itself may not (see `Node.send_output`)
            "stdout_output": proc.spec.send_stdout_as if self._relays_stdout(proc.spec.id) else None,
        }

    def _command(self, spec: NodeSpec) -> list[str]:
        if spec.kind == "python":
            return [sys.executable, str(spec.executable), *spec.args]
        if spec.kind == "operator":
            return [sys.executable, "-m", "doradus._node.operator_host", *spec.args]
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
        """Ask the keeper to start a node; the I/O thread takes its answer (`_on_spawned`)."""
        spec = proc.spec
        assert self._keeper is not None
        # closed once its pipes are (`_close_log`)
        proc.log = open(self.out_dir / f"log_{spec.id}.txt", "w", encoding="utf-8")  # noqa: SIM115
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        os.set_blocking(out_r, False)
        os.set_blocking(err_r, False)
        proc.pipes = [_Pipe(proc, "stdout", out_r, self.relays.get(spec.id)), _Pipe(proc, "stderr", err_r)]
        with self._lock:
            self._unanswered += 1
            proc.requested = True
        try:
            self._keeper.spawn(
                spec.id,
                self._command(spec),
                cwd=str(self.dataflow.working_dir),
                env=self._environment(spec),
                stdout=out_w,
                stderr=err_w,
            )
        except OSError as exc:  # the keeper has gone (the I/O thread says so) or the request is too big
            self._on_spawn_failed(proc, f"the request did not reach the node keeper: {exc}")
        finally:
            # The keeper got copies: end of file comes once the node and its children close theirs.
            os.close(out_w)
            os.close(err_w)

    def _on_spawned(self, proc: NodeProcess, pid: int) -> None:
        if not self._answer(proc):
            return
        proc.pid = pid
        for pipe in proc.pipes:
            self._selector.register(pipe.fd, selectors.EVENT_READ, pipe)
            pipe.registered = True
        self.runtime_record("INFO", f"started (pid {pid})", proc.spec.id, {"event": "started"})
        if self.telemetry is not None:
            self.telemetry.node_started(proc.spec.id, pid)

    def _on_spawn_failed(self, proc: NodeProcess, error: str) -> None:
        if not self._answer(proc):
            return
        for pipe in proc.pipes:
            os.close(pipe.fd)
        proc.pipes = []
        message = f"could not start node: {error}"
        proc.tail.append(message)
        self._write_raw(proc, message)
        self._close_log(proc)
        self.runtime_record("ERROR", message, proc.spec.id, {"event": "failed"})
        relay = self.relays.get(proc.spec.id)
        if relay is not None:
            relay.finish()  # no stdout will come: its readers' inputs close
        with self._lock:
            self._mark_exited(proc, 127)

    def _answer(self, proc: NodeProcess) -> bool:
        """Count the answer to a node's spawn request; False if it had one (exactly one counts)."""
        with self._lock:
            if proc.answered:
                return False
            proc.answered = True
            self._unanswered -= 1
            self._changed.notify_all()
            return True

    def _on_exited(self, proc: NodeProcess, code: int) -> None:
        """The node's process exited: take what it wrote, report it and close what it leaves.

        Pipes still held by a helper it started stay open: their lines are logged until they
        close or the run ends.
        """
        for pipe in list(proc.pipes):
            self._read_pipe(pipe, drain=True)
            self._end_lines(pipe)
            if pipe.relay is not None:
                pipe.relay.finish()  # the node's stdout lines end with the node
                pipe.relay = None
        if not proc.pipes:
            self._close_log(proc)
        self._report_exit(proc, code)
        with self._lock:
            self._mark_exited(proc, code)

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
    def _io_loop(self) -> None:
        """Read every node's output pipes and the keeper's reports, until `close` ends the run."""
        while not self._io_stop:
            for key, _events in self._selector.select(PAUSE_CHECK if self._paused else None):
                try:
                    if key.data is None:
                        _read_all(self._wake_r)
                    elif isinstance(key.data, Keeper):
                        self._keeper_events(key.data)
                    else:
                        self._read_pipe(key.data)
                except Exception as exc:  # this thread must live on: without it no node is seen ending
                    self.runtime_record("ERROR", f"internal error watching the nodes: {exc!r}")
            if self._paused:
                self._resume_paused()
        # The keeper has ended every node: take its last reports and what is left in the pipes.
        keeper = self._keeper
        deadline = time.monotonic() + 1.0
        while keeper is not None and keeper.fileno() in self._selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0 or not self._keeper_events(keeper, wait=left):
                break
        for proc in self.nodes.values():
            for pipe in list(proc.pipes):
                self._read_pipe(pipe, drain=True)
                self._close_pipe(pipe)

    def _keeper_events(self, keeper: Keeper, wait: float = 0.0) -> bool:
        """Act on the keeper's reports; False once it has gone."""
        events = keeper.receive(wait)
        for event in events or []:
            proc = self.nodes.get(event.key)
            if proc is None:
                continue
            if isinstance(event, Spawned):
                self._on_spawned(proc, event.pid)
            elif isinstance(event, SpawnFailed):
                self._on_spawn_failed(proc, event.error)
            elif isinstance(event, Exited) and not proc.exited:
                self._on_exited(proc, event.code)
        if events is None:
            self._keeper_gone(keeper)
            return False
        return True

    def _keeper_gone(self, keeper: Keeper) -> None:
        """The keeper ended: at the end of the run, or killed (its nodes were killed with it)."""
        self._selector.unregister(keeper.fileno())
        if self._ending:
            return
        self.runtime_record(
            "ERROR",
            f"the node keeper (pid {keeper.pid}) ended unexpectedly: every node it started was killed",
        )
        for proc in self.nodes.values():
            if proc.requested and not proc.answered:
                self._on_spawn_failed(proc, "the node keeper ended")
            elif proc.pid is not None and not proc.exited:
                proc.killed = True
                self._on_exited(proc, -signal.SIGKILL)

    def _read_pipe(self, pipe: _Pipe, drain: bool = False) -> None:
        """Read what the pipe holds (one chunk, or with ``drain`` all of it) and log its lines."""
        chunks = DRAIN_CHUNKS if drain else 1
        while chunks and pipe.fd >= 0:  # closed meanwhile: by an event earlier in the same batch
            chunks -= 1
            if not drain and pipe.relay is not None and not pipe.relay.has_room():
                self._pause(pipe)  # its readers lag: the node waits on its stdout, as on a terminal
                return
            try:
                chunk = os.read(pipe.fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._close_pipe(pipe)
                return
            lines = (pipe.partial + chunk).split(b"\n")
            pipe.partial = lines.pop()
            if len(pipe.partial) > MAX_LINE:
                lines.append(pipe.partial)
                pipe.partial = b""
            for raw in lines:  # one chunk per turn unless draining: every node's output gets its turn
                self._line(pipe, raw.decode("utf-8", "replace"))

    def _pause(self, pipe: _Pipe) -> None:
        if pipe.registered:
            self._selector.unregister(pipe.fd)
            pipe.registered = False
            self._paused.append(pipe)

    def _resume_paused(self) -> None:
        for pipe in list(self._paused):
            if pipe.relay is None or pipe.relay.has_room():
                self._paused.remove(pipe)
                if pipe in pipe.proc.pipes:
                    self._selector.register(pipe.fd, selectors.EVENT_READ, pipe)
                    pipe.registered = True

    def _close_pipe(self, pipe: _Pipe) -> None:
        """The pipe ended (every holder closed it) or the run did: log its last line, close it."""
        self._end_lines(pipe)
        if pipe.relay is not None:
            pipe.relay.finish()  # every line is queued: it sends them, then its readers' inputs close
            pipe.relay = None
        if pipe.registered:
            self._selector.unregister(pipe.fd)
            pipe.registered = False
        if pipe in self._paused:
            self._paused.remove(pipe)
        os.close(pipe.fd)
        pipe.fd = -1  # the number may soon name another node's pipe
        proc = pipe.proc
        proc.pipes.remove(pipe)
        if not proc.pipes and proc.exited:
            self._close_log(proc)

    def _end_lines(self, pipe: _Pipe) -> None:
        """Log a last line without its newline, and a traceback being gathered."""
        if pipe.partial:
            self._line(pipe, pipe.partial.decode("utf-8", "replace"))
            pipe.partial = b""
        if pipe.traceback:
            self._emit_traceback(pipe.proc, pipe.stream, pipe.traceback)
            pipe.traceback = []

    def _line(self, pipe: _Pipe, line: str) -> None:
        proc, stream = pipe.proc, pipe.stream
        if pipe.relay is not None:
            pipe.relay.put(line, time.time_ns())
        proc.tail.append(line)
        self._write_raw(proc, line)
        if pipe.traceback:  # a Python traceback becomes one ERROR record, ending at its exception line
            pipe.traceback.append(line)
            if line[:1] not in (" ", "\t", "") and not line.startswith("During handling"):
                self._emit_traceback(proc, stream, pipe.traceback)
                pipe.traceback = []
            return
        if line.startswith("Traceback (most recent call last):"):
            pipe.traceback = [line]
            return
        level, message, fields = classify_line(line, stream)
        self.record(make_record(level, message, node=proc.spec.id, source=stream, fields=fields))

    def _emit_traceback(self, proc: NodeProcess, stream: str, lines: list[str]) -> None:
        self.record(make_record("ERROR", "\n".join(lines), node=proc.spec.id, source=stream))

    def _close_log(self, proc: NodeProcess) -> None:
        with proc.log_lock:
            if proc.log is not None:
                proc.log.close()

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
        """Receivers reading ``proc`` learn that it ended, unless their links show it (caller holds the lock).

        Socket-pair receivers see their socket close (`Backend.reports_sender_end`); a broker or
        a topic does not say it.
        """
        from doradus.backends import backend_class

        told = {
            output
            for (sender, output), backend in self.edge_backends.items()
            if sender == proc.spec.id and not backend_class(backend).reports_sender_end
        }
        for other in self.nodes.values():
            if other is proc or other.conn is None or other.exited:
                continue
            if any(
                isinstance(inp.source, NodeSource)
                and inp.source.node == proc.spec.id
                and inp.source.output in told
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
        for drops in self.dropped_inputs(proc.spec.id):  # its last report is in: the final counts
            fields = {
                "event": "dropped",
                "input": drops.input,
                "source": drops.source,
                "dropped": drops.dropped,
                "queue_size": drops.queue_size,
                "queue_policy": DROP_POLICY,
            }
            self.runtime_record("WARN", drops.message, proc.spec.id, fields)
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
            reader = threading.Thread(
                target=self._watch_conn, args=(proc, conn), name=f"control-{node_id}", daemon=True
            )
            proc.readers.append(reader)
            reader.start()
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

    def running(self) -> list[str]:
        """Ids of the nodes started and not ended yet, in dataflow order.

        Example::

            daemon.running()   # ['camera', 'detector']
        """
        with self._lock:
            return [node_id for node_id, p in self.nodes.items() if p.pid is not None and not p.exited]

    def kill(self, sig: int = signal.SIGKILL) -> list[str]:
        """Signal every node's process group that is still running; returns their ids.

        A node gets a WARN record naming the signal the first time it is sent that signal.

        Example::

            daemon.kill(signal.SIGTERM)   # ['detector']
        """
        with self._lock:
            procs = [p for p in self.nodes.values() if p.pid is not None and not p.exited]
        name = signal.Signals(sig).name
        signalled = []
        for proc in procs:
            assert proc.pid is not None
            try:
                # The keeper holds an exited node unreaped until the run ends: the group id is still ours.
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                continue
            proc.killed = True
            signalled.append(proc.spec.id)
            if sig not in proc.signalled:  # callers repeat SIGKILL until the node is seen gone
                proc.signalled.add(sig)
                fields = {"event": "signal", "signal": name}
                self.runtime_record("WARN", f"still running: sending {name}", proc.spec.id, fields)
        return signalled

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
                    p.pid,
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

    def dropped_inputs(self, node_id: str | None = None) -> list[InputDrops]:
        """The inputs whose full queue dropped messages, as last reported (of one node, or all).

        Example::

            daemon.dropped_inputs()[0].message   # 'input detector/image dropped 12 messages (...)'
        """
        with self._lock:
            stats = {nid: dict(p.stats) for nid, p in self.nodes.items() if p.stats}
        found = []
        for spec in self.dataflow.nodes:
            if spec.id not in stats or node_id not in (None, spec.id):
                continue
            inputs = stats[spec.id].get("inputs") or {}
            for input_id, inp in spec.inputs.items():
                dropped = int((inputs.get(input_id) or {}).get("dropped", 0))
                if dropped:
                    source = str(inp.source) if isinstance(inp.source, NodeSource) else inp.source.source
                    found.append(InputDrops(spec.id, input_id, source, dropped, inp.queue_size))
        return found

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
        """End what is left of the run; release its sockets and private runtime folders; flush logs.

        What is left in the nodes' process groups (helpers a node started and left running)
        gets SIGTERM, then SIGKILL `KILL_AFTER_TERM` seconds later; what they print until
        then is logged. Writes ``out/<run-id>/edges.json``.
        """
        if self._closed:
            return
        self._closed = self._ending = True
        if self._keeper is not None:
            self._keeper.end(KILL_AFTER_TERM)
        if self._io_thread is not None:
            self._io_stop = True
            os.write(self._wake_w, b"!")
            self._io_thread.join(timeout=5.0)
        if self._keeper is not None:
            self._keeper.close()
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
        deadline = time.monotonic() + 2.0
        for proc in self.nodes.values():  # their last reports (and drop records) before the store closes
            for reader in proc.readers:
                reader.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.conn is not None:
                proc.conn.close()
            self._close_log(proc)
        try:
            self.write_edges()
        except OSError:
            pass
        for relay in self.relays.values():
            relay.abort()
        self.store.close()
        if self.telemetry is not None:
            self.telemetry.shutdown()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        shutil.rmtree(self.rundir, ignore_errors=True)
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft descriptor limit to its hard limit (``ulimit -n`` up to ``-Hn``).

    The daemon holds several descriptors per node, so the usual soft limit of 1024 would
    cap a run at a few hundred nodes. Nodes keep the soft limit this process had before
    the first call: programs using ``select()`` break on descriptors past 1024, and a node
    needing more may raise its own limit up to the same hard limit.

    Returns:
        (the soft limit nodes get, the hard limit).

    Example:
        >>> node_files, hard = raise_open_file_limit()
        >>> resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard, node_files <= hard
        (True, True)
    """
    global _node_files
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _node_files is None:
        _node_files = soft
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # e.g. an unlimited hard limit: `check_resources` measures what we have
    return _node_files, hard


def _read_all(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


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
        from doradus._observability.telemetry import RuntimeTelemetry
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
    """The backend of a sender's edges to other machines: the node's ``remote``, else the dataflow's."""
    from doradus.backends import DEFAULT_REMOTE_BACKEND

    own = sender.communication
    if isinstance(own, dict) and isinstance(own.get("remote"), str) and own["remote"]:
        return str(own["remote"])
    chosen = flow.communication.get("remote")
    return str(chosen) if isinstance(chosen, str) and chosen else DEFAULT_REMOTE_BACKEND


def inbound_remote(flow: Dataflow, placement: dict[str, str], machine: str) -> list[tuple[str, str]]:
    """(receiver, backend) of each link reaching a node on ``machine`` from another machine.

    What ``machine`` must announce a listening address for: links of a backend with a
    `Backend.machine_router` meet at routers instead (`router_backends_across`).

    Example::

        inbound_remote(flow, {"camera": "robot", "detector": "gpu"}, "gpu")   # [('detector', 'tcp')]
    """
    from doradus.backends import backend_class

    found = {
        (b, _remote_backend(flow, flow.node(a))) for a, b, here in _crossing(flow, placement, machine) if here
    }
    return sorted((r, b) for r, b in found if not backend_class(b).machine_router)


def router_backends_across(flow: Dataflow, placement: dict[str, str], machine: str) -> list[str]:
    """The backends with a `Backend.machine_router` that carry links between ``machine`` and others.

    Example::

        router_backends_across(flow, {"camera": "robot", "detector": "gpu"}, "gpu")   # ['zenoh']
    """
    from doradus.backends import backend_class

    used = {_remote_backend(flow, flow.node(a)) for a, _b, _h in _crossing(flow, placement, machine)}
    return sorted(name for name in used if backend_class(name).machine_router)
