"""The run's control socket: nodes register, say they are ready, report, and learn what happens.

Every node connects to the run's ``SOCK_SEQPACKET`` socket (`doradus._wire.control` says
what travels there): it registers and gets its `NodeConfig` with its socket-pair link ends,
says ``ready`` once its links are open, then sends its log records and ``stats`` reports.
The start barrier holds every node until all those it waits for are ready (or ended); then
each gets ``start`` (``stop`` if the run is stopping already). Afterwards the daemon only
relays: ``stop``, ``peer_gone`` when a sender ends without its links saying so, and the
log inputs' records (`doradus._runtime.log_inputs`). A node's reader thread ends with its
connection; a ``path: dynamic`` node, which is not our child, has ended then.

Example::

    control = ControlSocket(state, run_log, log_inputs, rundir)
    control.listen()
    control.serve()   # a thread accepting nodes
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from doradus._dataflow.model import NodeSource
from doradus._paths import new_socket_folder
from doradus._runtime.config import node_config
from doradus._runtime.log_inputs import LogInputs
from doradus._runtime.metrics import dropped_inputs
from doradus._runtime.processes import NodeProcess, end_reason
from doradus._runtime.run_log import RunLog
from doradus._runtime.state import RunState
from doradus._wire.control import (
    ConfigMessage,
    ErrorMessage,
    PeerFailedMessage,
    PeerGoneMessage,
    StartMessage,
    StopMessage,
    recv_control,
    send_control,
)
from doradus._wire.node_config import DynamicNodes

MAX_SOCKET_PATH = 100
"""Longest socket path used as is (Unix socket paths hold at most 107 bytes)."""
BACKLOG = 128
"""Connections waiting to be accepted: nodes register all at once."""
START: StartMessage = {"op": "start"}
STOP: StopMessage = {"op": "stop"}


class ControlSocket:
    """One run's control socket and the nodes' connections to it.

    Thread safety: one thread accepts (`serve`), one thread per node reads its connection;
    `check_barrier`, `node_ended` and `tell_peers_gone` expect the run's lock held, the
    others take it.

    Args:
        state: the run.
        run_log: where the nodes' records and the runtime's go.
        log_inputs: the nodes' ``dora/logs`` inputs.
        rundir: the run's private runtime folder (its socket and ``dynamic.json``).
    """

    def __init__(self, state: RunState, run_log: RunLog, log_inputs: LogInputs, rundir: Path) -> None:
        self._state = state
        self._log = run_log
        self._inputs = log_inputs
        self.rundir = rundir
        self.path = str(rundir / "control.sock")
        self.short_dir: Path | None = None
        """A short private folder for the socket when ``rundir`` is too deep for one."""
        if len(self.path.encode()) > MAX_SOCKET_PATH:
            # Unix socket paths hold at most 107 bytes: a deep runtime folder gets a short,
            # equally private (0700) folder for the socket.
            self.short_dir = new_socket_folder()
            self.path = str(self.short_dir / "c.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.after_config: Callable[[NodeProcess, socket.socket], None] | None = None
        """Called (the run's lock held) right after a node got its ``config``, before ``start``: what
        else it learns first (its parameters, `doradus._runtime.params`)."""

    @property
    def folders(self) -> list[str]:
        """The run's private folders: the run folder, and the socket's when it has one."""
        return [str(self.rundir), *([str(self.short_dir)] if self.short_dir else [])]

    def listen(self) -> None:
        """Open the socket (nodes may connect from now on; `serve` accepts them)."""
        self._listener.bind(self.path)
        self._listener.listen(BACKLOG)

    def serve(self) -> None:
        """Accept nodes in a thread of its own until `close`."""
        threading.Thread(target=self._accept_loop, name="doradus-accept", daemon=True).start()

    def close(self) -> None:
        """Stop accepting nodes (the socket's file goes with its folder: `remove_folders`)."""
        try:
            self._listener.close()
        except OSError:
            pass

    def remove_folders(self) -> None:
        """Remove the run's private folders (once every node has gone)."""
        shutil.rmtree(self.rundir, ignore_errors=True)
        if self.short_dir is not None:
            shutil.rmtree(self.short_dir, ignore_errors=True)

    # ------------------------------------------------------------ registration
    def _accept_loop(self) -> None:
        while not self._state.closed:
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
        if message is None or "op" not in message or message["op"] != "register":
            conn.close()
            return
        node_id = str(message.get("node_id"))
        state = self._state
        with state.lock:
            proc = state.nodes.get(node_id)
            problem = _registration_problem(proc, node_id, bool(message.get("dynamic")))
            if problem or proc is None:
                refused: ErrorMessage = {"op": "error", "message": str(problem)}
                send_control(conn, refused)
                conn.close()
                return
            socks = [sock for _link, sock in proc.links if sock is not None]
            config: ConfigMessage = {"op": "config", "config": node_config(state, proc)}
            send_control(conn, config, [s.fileno() for s in socks])
            if self.after_config is not None:
                self.after_config(proc, conn)
            for sock in socks:
                sock.close()
            proc.links.clear()
            proc.conn = conn
            proc.registered = True
            proc.watched = True
            reader = threading.Thread(
                target=self._watch, args=(proc, conn), name=f"control-{node_id}", daemon=True
            )
            proc.readers.append(reader)
            reader.start()
            if proc.spec.kind == "dynamic":
                self.update_dynamic_file()
            if state.stopping:
                send_control(conn, STOP)
            elif state.started:
                send_control(conn, START)
            self.check_barrier()
            state.changed.notify_all()

    def _watch(self, proc: NodeProcess, conn: socket.socket) -> None:
        """Read a node's control messages (its ``stats`` reports) until the connection ends.

        A dynamic node is not our child: its control socket closing means it ended.
        A spawned node's connection is closed by `node_ended` when its process exits.
        """
        state = self._state
        while True:
            try:
                message, fds = recv_control(conn)
            except (OSError, ValueError):
                message, fds = None, []
            for fd in fds:
                os.close(fd)
            if message is None:
                break
            if "op" not in message:
                continue  # not a control message: read as it came, and ignored
            if message["op"] == "ready":
                with state.lock:
                    proc.ready = True
                    self.check_barrier()
                    state.changed.notify_all()
            elif message["op"] == "log":
                self._log.node_record(proc, message.get("record"))
            elif message["op"] == "stats":
                with state.lock:
                    proc.record_stats(message)
            elif message["op"] == "ack":
                with state.lock:
                    proc.acked.add(str(message.get("peer")))
                    state.changed.notify_all()
        conn.close()
        for drops in dropped_inputs(state, proc.spec.id, ended=True):  # its last report is in: final counts
            self._log.runtime_record("WARN", drops.message, proc.spec.id, drops.fields)
        if proc.spec.kind != "dynamic":
            return
        with state.lock:
            if not proc.exited:
                proc.conn = None
                self.node_ended(proc, 0)

    def update_dynamic_file(self) -> None:
        """Write ``dynamic.json``: the ``path: dynamic`` nodes still waited for, and where to register."""
        state = self._state
        waiting = [n.spec.id for n in state.nodes.values() if n.spec.kind == "dynamic" and not n.registered]
        found: DynamicNodes = {"dataflow": str(state.dataflow.path), "nodes": waiting, "control": self.path}
        (self.rundir / "dynamic.json").write_text(json.dumps(found))

    # ------------------------------------------------------------ the run's course
    def check_barrier(self) -> None:
        """Start the dataflow once every node it waits for is ready or ended (caller holds the lock)."""
        state = self._state
        if state.started:
            return
        if all(p.ready or p.exited for p in state.nodes.values() if p.in_barrier):
            state.started = True
            for relay in state.relays.values():
                relay.dataflow_started()
            for proc in state.nodes.values():
                if proc.conn is not None:
                    send_control(proc.conn, STOP if state.stopping else START)
            self._inputs.dataflow_started()

    def request_stop(self) -> None:
        """Send Stop to every node (those not yet registered get it on registration)."""
        state = self._state
        with state.lock:
            state.stopping = True
            for proc in state.nodes.values():
                if proc.conn is not None and not proc.exited:
                    try:
                        send_control(proc.conn, STOP)
                    except OSError:
                        pass
            state.changed.notify_all()

    def node_ended(self, proc: NodeProcess, code: int) -> None:
        """A node has ended: what it held closes, its readers learn it (caller holds the lock).

        A node that is restarting (`doradus._runtime.restart`) has not ended for the others:
        only its own connection and unused link ends close.
        """
        proc.exited = True
        proc.returncode = code
        if proc.restarting:
            self._release(proc)
            self._state.changed.notify_all()
            return
        self._release(proc)
        self.ended_for_good(proc)

    def ended_for_good(self, proc: NodeProcess) -> None:
        """A node that ended is not started again: its readers learn it (caller holds the lock).

        Receivers of a node that failed get ``peer_failed`` (a `doradus.NodeFailed` event, then
        their inputs close); those of a node whose links are held (``restart_policy``)
        ``peer_gone``; the others see its links end.
        """
        self._inputs.close_finished()
        code = proc.returncode
        if code is not None and code != 0 and not proc.ended_by_us:
            proc.reason = proc.reason or end_reason(code)  # `status` says how it failed
            self._send_peer_failed(proc, code)
        elif proc.spec.id in self._state.held:
            self._send_peer_gone(proc.spec.id, None, skip=proc)
        else:
            self.tell_peers_gone(proc)
        self.check_barrier()
        self._state.changed.notify_all()

    def _send_peer_failed(self, proc: NodeProcess, code: int) -> None:
        """``peer_failed`` to each running node reading ``proc``'s node (caller holds the lock)."""
        message: PeerFailedMessage = {"op": "peer_failed", "peer": proc.spec.id, "error": end_reason(code)}
        for conn in self.readers_of(proc.spec.id, None, skip=proc):
            try:
                send_control(conn, message)
            except OSError:
                pass

    def _release(self, proc: NodeProcess) -> None:
        """Close the link ends a node never took and its connection (caller holds the lock)."""
        for _link, sock in proc.links:
            if sock is not None:
                sock.close()  # peers of a node that never registered now see their inputs close
        proc.links.clear()
        if proc.conn is not None:
            try:
                proc.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if not proc.watched:  # else the reader closes it once it has read the last report
                proc.conn.close()
            proc.conn = None

    def tell_peers_gone(self, proc: NodeProcess) -> None:
        """Receivers reading ``proc`` learn that it ended, unless their links show it (caller holds the lock).

        Socket-pair receivers see their socket close (`Backend.reports_sender_end`); a broker or
        a topic does not say it.
        """
        from doradus.backends import backend_class

        told = {
            output
            for (sender, output), backend in self._state.edge_backends.items()
            if sender == proc.spec.id and not backend_class(backend).reports_sender_end
        }
        self._send_peer_gone(proc.spec.id, told, skip=proc)

    def peer_gone(self, node_id: str) -> None:
        """A node on another machine ended: tell the local nodes that read it."""
        with self._state.lock:
            self._send_peer_gone(node_id, None)

    def _send_peer_gone(
        self, node_id: str, outputs: set[str] | None, skip: NodeProcess | None = None
    ) -> None:
        """``peer_gone`` to each running node reading ``node_id`` (of ``outputs``; None: any)."""
        message: PeerGoneMessage = {"op": "peer_gone", "peer": node_id}
        for conn in self.readers_of(node_id, outputs, skip):
            try:
                send_control(conn, message)
            except OSError:
                pass

    def readers_of(
        self, node_id: str, outputs: set[str] | None = None, skip: NodeProcess | None = None
    ) -> list[socket.socket]:
        """The connections of the running nodes here reading ``node_id`` (of ``outputs``; None: any).

        The caller holds the run's lock.

        Example::

            for conn in control.readers_of("camera"):
                send_control(conn, {"op": "peer_gone", "peer": "camera"})
        """
        found = []
        for other in self._state.nodes.values():
            if other is skip or other.conn is None or other.exited:
                continue
            if any(
                isinstance(inp.source, NodeSource)
                and inp.source.node == node_id
                and (outputs is None or inp.source.output in outputs)
                for inp in other.spec.inputs.values()
            ):
                found.append(other.conn)
        return found


def _registration_problem(proc: NodeProcess | None, node_id: str, dynamic: bool) -> str | None:
    if proc is None:
        return f"the dataflow has no node {node_id!r}"
    if proc.registered or proc.exited:
        return f"node {node_id!r} is already running in this dataflow"
    if dynamic and proc.spec.kind != "dynamic":
        return f"node {node_id!r} is not declared `path: dynamic`, so Doradus starts it itself"
    return None
