"""The node's end of its control channel once registered: the start, the daemon's word, reports.

After ``ready``, the node waits for ``start`` (`DaemonChannel.await_start`); from then on a
daemonic thread (`DaemonChannel.start_watching`) takes what the daemon sends — ``stop``,
``peer_gone``, the records of ``logs`` inputs — and sends the node's ``stats`` every
`STATS_INTERVAL` seconds. Log records go out from whichever thread logs.

Example::

    channel = DaemonChannel(sock, "camera", inbox, backend, counters)
    channel.send({"op": "ready"})
    channel.await_start()
    channel.start_watching()
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time

from doradus._exceptions import NodeError
from doradus._node.events import STOP_MANUAL, Error, InputClosed, Stop
from doradus._node.inbox import Inbox
from doradus._node.receive import LOG
from doradus._node.statistics import STATS_INTERVAL, NodeCounters
from doradus._wire.control import ControlMessage, LogRecord, ToDaemon, recv_control, send_control
from doradus.backends import Backend


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
            send_control(self._sock, self._counters.report(self._inbox))
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
            for fd in extra:
                os.close(fd)
            if message is None:
                self._inbox.push(None, Error("lost the connection to the Doradus daemon"))
                self._inbox.push(None, Stop(STOP_MANUAL))
                return
            self._on_control(message)

    def _on_control(self, message: ControlMessage) -> None:
        """Act on one message of the daemon (one the node does not know is ignored)."""
        if message["op"] == "stop":
            self._inbox.push(None, Stop(STOP_MANUAL))
        elif message["op"] == "peer_gone":
            self._backend.sender_ended(message["peer"])
        elif message["op"] == "log_input":
            self._inbox.push(message["input"], (LOG, json.dumps(message["record"]), time.time_ns()))
        elif message["op"] == "logs_closed":
            for input_id in message["inputs"]:
                self._inbox.push(None, InputClosed(input_id))
