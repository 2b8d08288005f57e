"""Restarting one node of a running dataflow, optionally with new configuration; its edges stay wired.

`Restarter.restart` stops one node and starts it again as a new process, with ``env`` merged
over its dataflow values, ``args`` replacing them and its outputs in a new data format
(``data_format``/``schema``, `doradus._runtime.format_change`), while the rest of the dataflow
runs on:

1. Refuse up front, stopping nothing, a node that cannot be restarted: a ``path: dynamic``
   node (its process is yours), one whose stdout lines the daemon relays, one with links
   across machines or on a backend whose links cannot be handed over
   (`Backend.restarts_links`: ``shm`` can); and a new data format the dataflow's checks refuse.
2. Tell each linked node here ``peer_restarting`` and wait for its ``ack``: it stops sending
   to the node (each message it would have sent is dropped and counted, per receiver, in its
   ``stats``: ``peer_restart_drops``) and takes the end of the node's old links as no end, so
   its inputs stay open (no ``InputClosed``). A sender keeps watching its old link: the old
   process's releases come back on it, and what that process still held is reclaimed when
   it exits (no shared memory is left behind).
3. Stop the old process: ``Stop``, then SIGTERM after ``grace`` seconds, then SIGKILL
   `KILL_AFTER_TERM` seconds later, as a run's stop does.
4. With a new data format: the run's dataflow and specs take it, and each receiver here is
   told ``input_format`` (it switches its decoder before the new process's messages reach it).
5. Make new socket pairs for every link of the node, start the new process (it registers
   and gets its ends, ``restart_count`` one more), and once it is ready hand each linked
   node its new ends (``peer_links``, descriptors attached): senders send to it again, and
   its receivers get ``peer_restarted`` (a `doradus.NodeRestarted` event).

`Restarter.revive` does steps 2 and 5 for a node whose process has ended already (its
restart policy: `doradus._runtime.restart_policy`).

Example::

    restarter = Restarter(state, run_log, control, spawner)
    restarter.restart("detector", env={"THRESHOLD": "0.7"})
"""

from __future__ import annotations

import dataclasses
import shlex
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from doradus._dataflow.format_change import FormatChange
from doradus._dataflow.model import Dataflow, NodeSource
from doradus._runtime.actions import NodeActionError, RestartNotSupported, running_node
from doradus._runtime.config import backpressure_windows
from doradus._runtime.control_socket import ControlSocket
from doradus._runtime.format_change import (
    FormatPlan,
    apply_format_plan,
    plan_format_change,
    tell_receivers,
    write_descriptor,
)
from doradus._runtime.links import _links_of, _socket_pair, link_backend
from doradus._runtime.node_stop import ProcessEnder
from doradus._runtime.processes import NodeProcess
from doradus._runtime.run_log import RunLog
from doradus._runtime.spawn import Spawner
from doradus._runtime.state import RunState
from doradus._wire.control import (
    PeerLinksMessage,
    PeerRestartedMessage,
    PeerRestartingMessage,
    send_control,
)
from doradus._wire.node_config import LinkConfig

ACK_WAIT = 5.0
"""Seconds the restart waits for the linked nodes to acknowledge ``peer_restarting``."""
READY_WAIT = 60.0
"""Seconds the restart waits for the new process to open its links (it may import a lot)."""

PeerEnds = dict[str, list[tuple[LinkConfig, socket.socket]]]
"""Peer node id → (its side of a new link, its socket end) of each link to the restarted node."""


class Restarter:
    """Restarts nodes of one run on this machine (see the module documentation).

    Thread safety: `restart` may be called from any thread; it blocks until the new process is
    ready (or ended), and two restarts of one node at once are refused. Restarts that change
    a data format run one after the other (each is checked against the dataflow the last one
    left).

    Args:
        state: the run.
        run_log: where the restart's records go.
        control: the run's control socket (it tells nodes, and registers the new process).
        spawner: starts the new process.
        extra_env: the variables the run loaded its dataflow with (a format change reloads it).
    """

    def __init__(
        self,
        state: RunState,
        run_log: RunLog,
        control: ControlSocket,
        spawner: Spawner,
        *,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self._state = state
        self._log = run_log
        self._control = control
        self._spawner = spawner
        self._ender = ProcessEnder(state, run_log)
        self._extra_env = dict(extra_env or {})
        self._format_lock = threading.Lock()
        self.on_ended: Callable[[NodeProcess], None] | None = None
        """Called (the run's lock held) when a restarted node's new process ended before it was ready."""

    def restart(
        self,
        node_id: str,
        *,
        env: Mapping[str, str] | None = None,
        args: str | None = None,
        grace: float = 5.0,
        formats: FormatChange | None = None,
    ) -> None:
        """Stop node ``node_id`` and start it again, its edges kept; returns once the new one is ready.

        Args:
            node_id: the node.
            env: variables set for the new process, over the dataflow's (and the run's).
            args: the new process's arguments (shell-quoted), replacing the dataflow's.
            grace: seconds the old process gets after ``Stop`` before SIGTERM.
            formats: its outputs' new ``data_format`` and ``schema`` (checked before anything
                stops; see `doradus._runtime.format_change`).

        Raises:
            NodeActionError: no such node (``status`` 404), it is not running (409), or its new
                arguments or data format are refused (422); nothing was stopped.
            RestartNotSupported: its links or kind cannot survive a restart; nothing was stopped.

        Example::

            restarter.restart("detector", env={"THRESHOLD": "0.7"}, args="--fast")
            restarter.restart("detector", formats=FormatChange("avro", "schemas/boxes.avsc"))
        """
        new_args = _split_args(node_id, args)
        with self._state.lock:
            self._restartable(node_id)
        if formats is None or formats.empty:
            self._restart(node_id, env, new_args, grace, None)
            return
        # One format change at a time: each is checked against the text the last one left.
        with self._format_lock:
            plan = plan_format_change(self._state, node_id, formats, extra_env=self._extra_env)
            self._restart(node_id, env, new_args, grace, plan)

    def _restart(
        self,
        node_id: str,
        env: Mapping[str, str] | None,
        new_args: tuple[str, ...] | None,
        grace: float,
        plan: FormatPlan | None,
    ) -> None:
        """The restart once checked (see the module documentation's steps)."""
        state = self._state
        with state.lock:
            proc = self._restartable(node_id)
            peers = [state.nodes[p] for p in linked_peers(state, node_id) if p in state.nodes]
            proc.restarting = True
        fields = {"event": "restarting", "restarts": proc.restarts + 1}
        self._log.runtime_record("INFO", "restarting", node_id, fields)
        try:
            self._tell_peers(node_id, peers)
            self._ender.end(proc, grace)
            if plan is not None:
                self._change_formats(plan)
            ends = self._respawn(proc, env, new_args)
            self._ender.wait(lambda: proc.ready or proc.exited, READY_WAIT)
        finally:
            with state.lock:
                proc.restarting = False
                if proc.exited and self.on_ended is not None:  # the new process ended before it was ready
                    self.on_ended(proc)
                state.changed.notify_all()
        self._hand_over(node_id, ends)

    def revive(self, node_id: str) -> None:
        """Start node ``node_id`` again after its process ended (its restart policy); its edges kept.

        The node is ``restarting`` already (`doradus._runtime.restart_policy`): its receivers kept
        their inputs open. Its linked nodes are told ``peer_restarting`` (its senders drop and
        count what they would send it), a new process starts, and once it is ready (or has
        ended) its peers get their new ends. Returns then; the caller looks at ``exited``.

        Example::

            restarter.revive("detector")
        """
        state = self._state
        with state.lock:
            proc = state.nodes[node_id]
            peers = [state.nodes[p] for p in linked_peers(state, node_id) if p in state.nodes]
        self._tell_peers(node_id, peers)
        ends = self._respawn(proc, None, None)
        self._ender.wait(lambda: proc.ready or proc.exited, READY_WAIT)
        self._hand_over(node_id, ends)

    def _restartable(self, node_id: str) -> NodeProcess:
        """The node's record, if it can be restarted now (caller holds the run's lock)."""
        state = self._state
        proc = running_node(state, node_id)
        if not state.started or state.stopping:
            raise NodeActionError(
                f"node {node_id!r} cannot be restarted while the dataflow is "
                f"{'stopping' if state.stopping else 'starting'}: try again once it runs",
                node_id=node_id,
            )
        check_restartable(state, node_id)
        return proc

    # ------------------------------------------------------------------ steps
    def _tell_peers(self, node_id: str, peers: list[NodeProcess]) -> None:
        """``peer_restarting`` to each linked node that runs; wait for their ``ack``."""
        message: PeerRestartingMessage = {"op": "peer_restarting", "peer": node_id}
        told: list[NodeProcess] = []
        with self._state.lock:
            for peer in peers:
                peer.acked.discard(node_id)
                if peer.conn is None or peer.exited:
                    continue
                try:
                    send_control(peer.conn, message)
                except OSError:
                    continue
                told.append(peer)
        self._ender.wait(lambda: all(node_id in p.acked or p.exited for p in told), ACK_WAIT)

    def _change_formats(self, plan: FormatPlan) -> None:
        """The run takes the new formats; the receivers here are told before the new process starts."""
        with self._state.lock:
            apply_format_plan(self._state, plan)
            told = tell_receivers(self._state, plan)
        write_descriptor(self._state.out_dir, plan.text)
        fields = {
            "event": "data_format",
            "outputs": {o: str(f) for o, f in plan.outputs.items()},
            "told": told,
        }
        self._log.runtime_record("INFO", f"new data format: {plan.describe()}", plan.node_id, fields)

    def _respawn(
        self, proc: NodeProcess, env: Mapping[str, str] | None, args: tuple[str, ...] | None
    ) -> PeerEnds:
        """Reset the node's record with its new configuration and links, and start it."""
        state = self._state
        with state.lock:
            spec = proc.spec
            if env:
                spec = dataclasses.replace(spec, env={**spec.env, **env})
                proc.env_override.update(env)
            if args is not None:
                spec = dataclasses.replace(spec, args=args)
            proc.spec = state.specs[spec.id] = spec
            _reset(proc)
            ends = new_links(state, proc)
        self._spawner.spawn(proc)
        return ends

    def _hand_over(self, node_id: str, ends: PeerEnds) -> None:
        """Give each linked node its new ends (``peer_links``); those of ended nodes are closed."""
        with self._state.lock:
            for peer_id, pairs in ends.items():
                peer = self._state.nodes.get(peer_id)
                message: PeerLinksMessage = {
                    "op": "peer_links",
                    "peer": node_id,
                    "links": [c for c, _ in pairs],
                }
                if peer is not None and peer.conn is not None and not peer.exited:
                    try:
                        send_control(peer.conn, message, [s.fileno() for _, s in pairs])
                    except OSError:
                        pass
                for _config, sock in pairs:
                    sock.close()  # the peer has its copy; an ended peer's end closes: EOF for the node
            proc = self._state.nodes[node_id]
            if not proc.exited:
                self._tell_restarted(node_id)

    def _tell_restarted(self, node_id: str) -> None:
        """``peer_restarted`` to each running node reading ``node_id`` (caller holds the lock)."""
        message: PeerRestartedMessage = {"op": "peer_restarted", "peer": node_id}
        for conn in self._control.readers_of(node_id):
            try:
                send_control(conn, message)
            except OSError:
                pass


def _split_args(node_id: str, args: str | None) -> tuple[str, ...] | None:
    """``args`` split as a shell would (None: unchanged); 422 when they cannot be."""
    try:
        return None if args is None else tuple(shlex.split(args))
    except ValueError as exc:
        raise NodeActionError(
            f"the arguments {args!r} for node {node_id!r} cannot be read ({exc}): "
            "quote them as a shell would",
            node_id=node_id,
            status=422,
        ) from exc


def _reset(proc: NodeProcess) -> None:
    """Make a node's record that of a node about to start again (caller holds the run's lock)."""
    proc.restarts += 1
    proc.pid = proc.returncode = proc.conn = proc.stats = None
    proc.exited = proc.registered = proc.ready = proc.requested = proc.answered = False
    proc.killed = proc.watched = proc.paused = False
    proc.liveness = proc.reason = None
    proc.signalled = set()


def linked_peers(state: RunState, node_id: str) -> list[str]:
    """The nodes sending to or receiving from ``node_id`` (any machine), in dataflow order.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Dataflow, InputSpec, NodeSpec
        >>> a = NodeSpec(id="a", kind="python", outputs=("out",))
        >>> b = NodeSpec(id="b", kind="python", inputs={"x": InputSpec("x", NodeSource("a", "out"))})
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(a, b))
        >>> linked_peers(RunState.create(flow, run_id="r", machine="m", out_dir=Path("/tmp/r")), "b")
        ['a']
    """
    found = []
    for (sender, receiver), link in _links_of(state.dataflow).items():
        if not link.routes:
            continue
        if sender == node_id and receiver != node_id:
            found.append(receiver)
        elif receiver == node_id and sender != node_id:
            found.append(sender)
    order = list(state.specs)
    return sorted(set(found), key=order.index)


def check_restartable(state: RunState, node_id: str) -> None:
    """Raise if node ``node_id`` cannot be restarted with its edges kept (caller holds the lock).

    Raises:
        RestartNotSupported: naming what stands in the way and the fix.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Dataflow, NodeSpec
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(NodeSpec(id="ui", kind="dynamic"),))
        >>> check_restartable(RunState.create(flow, run_id="r", machine="m", out_dir=Path("/tmp/r")), "ui")
        Traceback (most recent call last):
        ...
        doradus._runtime.actions.RestartNotSupported: node 'ui' is `path: dynamic`: ...
    """
    from doradus.backends import backend_class

    spec = state.specs[node_id]
    if spec.kind == "dynamic":
        raise RestartNotSupported(
            f"node {node_id!r} is `path: dynamic`: its process is yours, so Doradus cannot start it "
            "again; stop it and start it again yourself",
            node_id=node_id,
        )
    for sender, receiver in _links_of(state.dataflow):
        if node_id not in (sender, receiver):
            continue
        if state.relays_stdout(sender) and _reads_stdout(state, sender, receiver):
            raise RestartNotSupported(
                f"node {node_id!r} cannot be restarted: the daemon relays the stdout lines of {sender!r} "
                f"to {receiver!r} (`send_stdout_as`), a link a restart cannot hand over; "
                "restart the whole dataflow instead (`doradus restart`)",
                node_id=node_id,
            )
        if sender not in state.nodes or receiver not in state.nodes:
            raise RestartNotSupported(
                f"node {node_id!r} cannot be restarted: its link between {sender!r} and {receiver!r} "
                "crosses machines, and only links on this machine can be handed over; "
                "restart the whole dataflow instead (`doradus restart`)",
                node_id=node_id,
            )
        backend = link_backend(state.dataflow, state.specs[sender])
        if not backend_class(backend).restarts_links:
            raise RestartNotSupported(
                f"node {node_id!r} cannot be restarted: its link between {sender!r} and {receiver!r} "
                f"uses the {backend!r} backend, whose links cannot be handed over to a new process; "
                f"use the shm backend for the links of {sender!r} on one machine (`communication: shm`), "
                "or restart the whole dataflow (`doradus restart`)",
                node_id=node_id,
            )


def _reads_stdout(state: RunState, sender: str, receiver: str) -> bool:
    output = state.specs[sender].send_stdout_as
    return any(
        isinstance(inp.source, NodeSource) and inp.source.node == sender and inp.source.output == output
        for inp in state.specs[receiver].inputs.values()
    )


def new_links(state: RunState, proc: NodeProcess) -> PeerEnds:
    """New socket pairs for every link of ``proc``'s node: its ends in ``proc.links``, the peers' returned.

    The caller holds the run's lock and has checked the node (`check_restartable`): every link
    is a socket pair between two nodes here.

    Example::

        ends = new_links(state, state.nodes["middle"])   # {'source': [...], 'sink': [...]}
    """
    node_id = proc.spec.id
    ends: PeerEnds = {}
    for (sender, receiver), link in _links_of(state.dataflow).items():
        if node_id not in (sender, receiver) or not link.routes:
            continue
        backend = state.edge_backends.get(
            (sender, next(iter(link.routes))), link_backend(state.dataflow, state.specs[sender])
        )
        out: LinkConfig = {"peer": receiver, "dir": "out", "outputs": sorted(link.routes), "backend": backend}
        if windows := backpressure_windows(state.specs[receiver], link.routes, backend):
            out["backpressure"] = windows
        inbound: LinkConfig = {"peer": sender, "dir": "in", "routes": link.routes, "backend": backend}
        if sender in state.held:
            inbound["held"] = True
        if receiver in state.held:
            out["held"] = True
        if limit := state.specs[sender].shared_memory_pool_size:
            out["hold_limit"] = limit
        a, b = _socket_pair()
        if sender == node_id:
            proc.links.append((out, a))
        else:
            ends.setdefault(sender, []).append((out, a))
        if receiver == node_id:
            proc.links.append((inbound, b))
        else:
            ends.setdefault(receiver, []).append((inbound, b))
    return ends


def restart_refusal(flow: Dataflow, node_id: str, placement: Mapping[str, str]) -> RestartNotSupported | None:
    """Why node ``node_id`` of ``flow`` (placed as ``placement``) cannot be restarted; None if it can.

    What `Restarter.restart` refuses up front, answered where only the dataflow is known (the
    coordinator, before it asks a daemon).

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Dataflow, NodeSpec
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(NodeSpec(id="a", kind="python"),))
        >>> restart_refusal(flow, "a", {}) is None
        True
    """
    machine = placement.get(node_id, "here")
    state = RunState.create(
        flow, run_id="check", machine=machine, out_dir=Path("/nonexistent"), placement=dict(placement)
    )
    try:
        check_restartable(state, node_id)
    except RestartNotSupported as exc:
        return exc
    return None
