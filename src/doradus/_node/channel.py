"""The node's end of its control channel once registered: the start, the daemon's word, reports.

After ``ready``, the node waits for ``start`` (`DaemonChannel.await_start`); from then on a
daemonic thread (`DaemonChannel.start_watching`) takes what the daemon sends — ``stop``,
``peer_gone`` and ``peer_failed`` (a sender ended for good; the latter with a `NodeFailed`
event), ``peer_restarted`` (a `NodeRestarted` event), ``param_update`` and ``param_deleted`` (its
parameters, kept in `DaemonChannel.parameters`, and a `ParamUpdate` or `ParamDeleted` event),
the records of ``logs`` inputs,
``pause`` and ``resume`` (the inbox holds or delivers its messages), ``peer_restarting``
and ``peer_links`` (a linked node restarts: the backend keeps its inputs open and adopts the
new link ends), ``input_format`` (that
node restarts with a new data format: `on_input_format` switches the input's decoder) — and
sends the node's ``stats`` every `STATS_INTERVAL` seconds. Log records go out from whichever thread logs.

Example::

    channel = DaemonChannel(sock, "camera", inbox, backend, counters)
    channel.send({"op": "ready"})
    channel.await_start()
    channel.start_watching()
"""

from __future__ import annotations

import copy
import json
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from doradus._exceptions import NodeError
from doradus._node.events import (
    STOP_MANUAL,
    Error,
    InputClosed,
    NodeFailed,
    NodeRestarted,
    ParamDeleted,
    ParamUpdate,
    Stop,
)
from doradus._node.inbox import Inbox
from doradus._node.receive import LOG
from doradus._node.statistics import STATS_INTERVAL, NodeCounters
from doradus._wire.control import ControlMessage, ToDaemon, recv_control, send_control
from doradus._wire.node_config import LinkConfig
from doradus._wire.node_reports import LogRecord
from doradus.backends import Backend, LinkSpec


class DaemonChannel:
    """The control socket of a registered node, and what the node does with its messages.

    Thread safety: `send` may be called from any thread (one datagram per message).

    Example:
        >>> from doradus.backends import get_backend
        >>> from doradus._node.receive import InboxReceiver
        >>> ours, daemon = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        >>> inbox = Inbox({})
        >>> backend = get_backend("shm")("n", InboxReceiver(inbox))
        >>> channel = DaemonChannel(ours, "n", inbox, backend, NodeCounters([], []))
        >>> send_control(daemon, {"op": "stop"})
        >>> channel.await_start(); inbox.pop(0)
        (None, Stop(reason='manual'))
        >>> channel.close(); daemon.close()
    """

    def __init__(
        self, sock: socket.socket, node_id: str, inbox: Inbox, backend: Backend, counters: NodeCounters
    ) -> None:
        self._sock = sock
        self._node_id = node_id
        self._inbox = inbox
        self._backend = backend
        self._counters = counters
        self.on_input_format: Callable[[str, dict[str, Any]], None] | None = None
        """Called with an input and its new format (``input_format``); what it raises is an error event."""
        self.handed_ns: Callable[[], int] = lambda: 0
        """When the node's code was handed its current input message (`time.perf_counter_ns`; 0: none)."""
        self.input_sources: dict[str, str] = {}
        """Input id → the node it reads (inputs fed by another node), for `NodeFailed` events."""
        self._params: dict[str, Any] = {}
        self._params_lock = threading.Lock()
        self.stop_asked = False
        """The daemon asked the node to stop (the run, or this node, is stopping)."""

    def parameters(self) -> dict[str, Any]:
        """The node's parameters as the daemon last said (a new deep copy each call; thread-safe).

        Updated as ``param_update`` and ``param_deleted`` arrive, before their events are handed out.

        Example::

            channel.parameters()   # {'exposure': 0.02}
        """
        with self._params_lock:
            return copy.deepcopy(self._params)

    def send(self, message: ToDaemon) -> None:
        """Send one message to the daemon.

        Raises:
            OSError: the daemon has gone.
        """
        send_control(self._sock, message)

    def send_log(self, record: LogRecord) -> None:
        """Send one of the node's log records."""
        send_control(self._sock, {"op": "log", "record": record})

    def await_start(self) -> None:
        """Wait for ``start`` (or ``stop``: the node then gets a ``Stop`` event first thing).

        Raises:
            NodeError: the daemon went away first.
        """
        while True:
            message, extra = recv_control(self._sock)
            for fd in extra:
                os.close(fd)
            if message is None:
                raise NodeError(
                    "the Doradus daemon went away before the dataflow started", node_id=self._node_id
                )
            if message["op"] == "start":
                return
            self._on_control(message)
            if message["op"] == "stop":
                return

    def start_watching(self) -> None:
        """Take the daemon's messages and send ``stats`` reports, on a daemonic thread, until it goes."""
        threading.Thread(target=self._watch, name="doradus-control", daemon=True).start()

    def report_statistics(self) -> None:
        """Send ``{"op": "stats", ...}`` to the daemon (off the message path; errors ignored)."""
        try:
            report = self._counters.report(self._inbox)
            drops = self._backend.restart_drops()
            if drops:
                report["peer_restart_drops"] = drops
            handed = self.handed_ns()
            if handed:
                report["busy_ms"] = round((time.perf_counter_ns() - handed) / 1e6, 1)
            send_control(self._sock, report)
        except (OSError, RuntimeError, ValueError):
            pass

    def close(self) -> None:
        """Close the socket (the daemon then knows the node has ended)."""
        try:
            self._sock.close()
        except OSError:
            pass

    def _watch(self) -> None:
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        next_report = time.monotonic() + STATS_INTERVAL
        while True:
            wait = max(0.0, next_report - time.monotonic())
            try:
                ready = poller.poll(wait * 1000)
            except OSError:
                ready = [(0, select.POLLHUP)]
            if time.monotonic() >= next_report:
                next_report += STATS_INTERVAL
                if next_report < time.monotonic():
                    next_report = time.monotonic() + STATS_INTERVAL
                self.report_statistics()
            if not ready:
                continue
            try:
                message, extra = recv_control(self._sock)
            except OSError:
                message, extra = None, []
            if message is None:
                for fd in extra:
                    os.close(fd)
                self._inbox.push(None, Error("lost the connection to the Doradus daemon"))
                self._inbox.push(None, Stop(STOP_MANUAL))
                return
            if message["op"] == "peer_links":
                self._adopt(message["links"], extra)
                continue
            for fd in extra:
                os.close(fd)
            self._on_control(message)

    def _on_control(self, message: ControlMessage) -> None:
        """Act on one message of the daemon (one the node does not know is ignored)."""
        if message["op"] == "stop":
            self.stop_asked = True
            self._inbox.push(None, Stop(STOP_MANUAL))
        elif message["op"] == "peer_gone":
            self._backend.sender_ended(message["peer"])
        elif message["op"] == "log_input":
            self._inbox.push(message["input"], (LOG, json.dumps(message["record"]), time.time_ns()))
        elif message["op"] == "logs_closed":
            for input_id in message["inputs"]:
                self._inbox.push(None, InputClosed(input_id))
        elif message["op"] == "pause":
            self._inbox.pause()
            if self._inbox.lossless:  # their senders wait for room without a deadline meanwhile
                self._backend.hold_senders(self._inbox.lossless, True)
        elif message["op"] == "resume":
            if self._inbox.lossless:
                self._backend.hold_senders(self._inbox.lossless, False)
            self._inbox.resume()
        elif message["op"] == "peer_restarting":
            self._backend.peer_restarting(message["peer"])
            self.send({"op": "ack", "of": "peer_restarting", "peer": message["peer"]})
        elif message["op"] == "input_format":
            self._switch_format(message["input"], message["format"])
        elif message["op"] == "peer_failed":
            peer = message["peer"]
            inputs = tuple(i for i, source in self.input_sources.items() if source == peer)
            self._inbox.push(None, NodeFailed(peer, message["error"], inputs))
            self._backend.sender_ended(peer)
        elif message["op"] == "peer_restarted":
            self._inbox.push(None, NodeRestarted(message["peer"]))
        elif message["op"] == "param_update":
            with self._params_lock:
                self._params[message["key"]] = message["value"]
            self._inbox.push(None, ParamUpdate(message["key"], copy.deepcopy(message["value"])))
        elif message["op"] == "param_deleted":
            with self._params_lock:
                self._params.pop(message["key"], None)
            self._inbox.push(None, ParamDeleted(message["key"]))

    def _switch_format(self, input_id: str, format_json: dict[str, Any]) -> None:
        """Decode ``input_id`` in its sender's new format; an error event if it cannot be loaded."""
        switch = self.on_input_format
        if switch is None:
            return
        try:
            switch(input_id, format_json)
        except Exception as exc:  # a codec that cannot load (its package, its schema): the node goes on
            self._inbox.push(None, Error(f"could not read input {input_id!r} in its new data format: {exc}"))

    def _adopt(self, links: list[LinkConfig], fds: list[int]) -> None:
        """Open the new link ends to a restarted peer (each link's descriptor, in order)."""
        try:
            self._backend.open(link_specs(links), fds)
        except Exception as exc:  # the node goes on; what it lacks is said as an error event
            self._inbox.push(None, Error(f"could not rejoin the restarted node's links: {exc}"))


def link_specs(links: list[LinkConfig]) -> list[LinkSpec]:
    """The `LinkSpec` of each link the daemon wired for the node (its backend among the options).

    Example:
        >>> link: LinkConfig = {"peer": "cam", "dir": "in", "routes": {"image": ["frame"]}, "backend": "shm"}
        >>> link_specs([link])[0].routes
        {'image': ['frame']}
    """
    from doradus.backends import DEFAULT_LOCAL_BACKEND

    return [
        LinkSpec(
            spec["peer"],
            spec["dir"],
            tuple(spec.get("outputs", ())),
            spec.get("routes", {}),
            {**spec.get("options", {}), "backend": spec.get("backend", DEFAULT_LOCAL_BACKEND)},
            held=spec.get("held", False),
            hold_limit=spec.get("hold_limit"),
            backpressure={
                output: {i: (int(w[0]), float(w[1])) for i, w in inputs.items()}
                for output, inputs in spec.get("backpressure", {}).items()
            },
        )
        for spec in links
    ]
