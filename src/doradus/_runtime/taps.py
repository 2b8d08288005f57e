"""A run's topic socket: ``doradus topic`` on this machine lists outputs, taps them, publishes.

`TapServer` listens on a ``SOCK_SEQPACKET`` socket in the run's private runtime folder (mode
0700: only this user reaches it) and writes where in ``topics.json`` there, so a client finds
every run of this machine (`doradus._runtime.topic_messages` holds what they say). It costs a
listening socket and a thread waiting on it; nothing on the message path.

A **tap** on an output is an ``shm`` out link handed to the running node (``peer_links``,
what a restarted peer's new links travel as) whose reading end goes to the client: the
messages then flow from the node's process to the client's, nothing through the daemon. The
node's sending end never blocks and counts what it skips (`doradus.backends._shm_taps`).
When the client ends (Ctrl-C, a closed pipe, a crash) its end closes, the node's reactor sees
it and drops the link: the node is left as it was. A tap made while the node restarts is
refused; a tap on a node that restarts ends with its old process (the client may ask again).

Example::

    server = TapServer(state, rundir, placement={})
    server.listen()
    ...
    server.close()
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from doradus._paths import new_socket_folder
from doradus._runtime.links import _socket_pair
from doradus._runtime.state import RunState
from doradus._runtime.topic_facts import TAP_BACKEND, tap_refusal, topic_facts
from doradus._runtime.topic_messages import (
    MAX_DATAFLOW_TEXT,
    POINTER_FILE,
    SOCKET_NAME,
    DataflowFile,
    Hello,
    PubRequest,
    Refusal,
    Tapped,
    TopicError,
    TopicList,
)
from doradus._runtime.topic_pub import Publisher
from doradus._wire.control import PeerLinksMessage, recv_json, send_control, send_json
from doradus._wire.node_config import LinkConfig

MAX_SOCKET_PATH = 100
"""Longest socket path used as is (Unix socket paths hold at most 107 bytes)."""
IDLE_TIMEOUT = 60.0
"""Seconds a client connection may stay silent before the server closes it."""
TAP_PEER = "doradus-topic-{n}"
"""The name a node knows a tap by."""


class TapServer:
    """One run's topic socket (see the module documentation).

    Thread safety: one thread accepts, one thread serves each client connection; the run's
    lock guards what they read and hand over.

    Args:
        state: the run.
        rundir: the run's private runtime folder.
        placement: node id → machine, for a run across machines (empty: every node here).
    """

    def __init__(self, state: RunState, rundir: Path, placement: Mapping[str, str]) -> None:
        self._state = state
        self._placement = dict(placement)
        self.rundir = rundir
        self.short_dir: Path | None = None
        self.path = str(rundir / SOCKET_NAME)
        if len(self.path.encode()) > MAX_SOCKET_PATH:
            self.short_dir = new_socket_folder()
            self.path = str(self.short_dir / "t.sock")
        self._listener: socket.socket | None = None
        self._numbers = itertools.count(1)
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()
        self._closed = False

    def listen(self) -> None:
        """Open the socket, say where in ``topics.json``, and serve clients from a thread of its own."""
        self._listener = listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(self.path)
        listener.listen(16)
        pointer = {"socket": self.path, "run_id": self._state.run_id, "pid": os.getpid()}
        (self.rundir / POINTER_FILE).write_text(json.dumps(pointer))
        threading.Thread(
            target=self._accept_loop, args=(listener,), name="doradus-topics", daemon=True
        ).start()

    def close(self) -> None:
        """Stop serving; close the links ``pub`` made. Taps end with the nodes (or their clients)."""
        with self._lock:
            self._closed = True
            publisher, self._publisher = self._publisher, None
        if self._listener is not None:
            self._listener.close()
        if publisher is not None:
            publisher.close()
        (self.rundir / POINTER_FILE).unlink(missing_ok=True)
        if self.short_dir is not None:
            shutil.rmtree(self.short_dir, ignore_errors=True)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(conn,), name="doradus-topic-client", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        """Answer one client's requests until it closes the connection (or stays silent too long)."""
        conn.settimeout(IDLE_TIMEOUT)
        with conn:
            while True:
                try:
                    message, fds = recv_json(conn)
                except (OSError, ValueError):
                    return
                for fd in fds:
                    os.close(fd)
                if message is None:
                    return
                try:
                    self._answer(conn, message)
                except OSError:
                    return

    def _answer(self, conn: socket.socket, message: dict[str, Any]) -> None:
        """Send the answer to one request (a tap's reading end attached)."""
        try:
            op = message.get("op")
            if op == "tap":
                answer, end = self.tap(
                    str(message.get("node")), str(message.get("output")), str(message.get("mode"))
                )
                try:
                    send_json(conn, answer, [end.fileno()])
                finally:
                    end.close()  # the client has its copy; if it has gone, the node sees the end
                return
            if op == "hello":
                send_json(conn, self.hello())
            elif op == "topics":
                send_json(conn, self.topics())
            elif op == "dataflow":
                send_json(conn, self.dataflow())
            elif op == "pub":
                send_json(conn, self.publisher().publish(_pub_request(message)))
            else:
                raise TopicError(f"unknown request {op!r}", "use the same Doradus version as the run")
        except TopicError as exc:
            refusal: Refusal = {"op": "error", "message": str(exc), "fix": exc.fix}
            send_json(conn, refusal)

    # ----------------------------------------------------------------- requests
    def hello(self) -> Hello:
        """Which run this is.

        Example::

            server.hello()["dataflow"]   # 'demo'
        """
        state = self._state
        return {
            "op": "hello",
            "run_id": state.run_id,
            "dataflow": state.dataflow_name,
            "machine": state.machine,
            "pid": os.getpid(),
            "nodes": list(state.nodes),
        }

    def topics(self) -> TopicList:
        """Every output of the dataflow (`doradus._runtime.topic_facts.topic_facts`).

        Example::

            server.topics()["topics"][0]["topic"]   # 'camera/image'
        """
        return {"op": "topics", "topics": topic_facts(self._state, self._placement)}

    def dataflow(self) -> DataflowFile:
        """The dataflow file the run was started with (``doradus record --attach`` keeps it).

        Example::

            server.dataflow()["path"]   # '/home/me/demo/dataflow.yml'
        """
        flow = self._state.dataflow
        text = flow.text if len(flow.text.encode()) <= MAX_DATAFLOW_TEXT else None
        return {
            "op": "dataflow",
            "path": str(flow.path),
            "name": self._state.dataflow_name,
            "run_id": self._state.run_id,
            "text": text,
        }

    def tap(self, node_id: str, output: str, mode: str) -> tuple[Tapped, socket.socket]:
        """Hand node ``node_id`` a tap on ``output``; the answer and the tap's reading end.

        Raises:
            TopicError: no such output, it cannot be tapped here, the node is not running, or
                ``mode`` is not ``full`` or ``headers``.

        Example::

            answer, end = server.tap("camera", "image", "headers")
        """
        from doradus.backends._shm_taps import TAP_MODES, TAP_OPTION

        if mode not in TAP_MODES:
            raise TopicError(f"no tap mode {mode!r} ({' or '.join(TAP_MODES)})", None)
        state = self._state
        with state.lock:
            refusal = tap_refusal(state, node_id, output, self._placement)
            if refusal is not None:
                raise refusal
            proc = state.nodes[node_id]
            fmt = state.specs[node_id].output_formats.get(output)
            peer = TAP_PEER.format(n=next(self._numbers))
            ours, theirs = _socket_pair()
            link: LinkConfig = {
                "peer": peer,
                "dir": "out",
                "outputs": [output],
                "backend": TAP_BACKEND,
                "options": {TAP_OPTION: mode},
            }
            message: PeerLinksMessage = {"op": "peer_links", "peer": peer, "links": [link]}
            try:
                assert proc.conn is not None  # `tap_refusal` checked it
                send_control(proc.conn, message, [theirs.fileno()])
            except OSError as exc:
                ours.close()
                raise TopicError(f"could not reach node {node_id!r}: {exc}", "try again") from exc
            finally:
                theirs.close()
        format_json = None if fmt is None or fmt.name == "arrow" else fmt.to_json()
        return {"op": "tapped", "topic": f"{node_id}/{output}", "format": format_json, "peer": peer}, ours

    def publisher(self) -> Publisher:
        """The run's `Publisher`, made at the first ``pub``.

        Raises:
            TopicError: the server is closed (the run is ending).
        """
        with self._lock:
            if self._closed:
                raise TopicError("the dataflow is ending", None)
            if self._publisher is None:
                self._publisher = Publisher(self._state)
            return self._publisher


def _pub_request(message: dict[str, Any]) -> PubRequest:
    """A ``pub`` request as it came, its fields typed.

    Raises:
        TopicError: its metadata is not a JSON object.

    Example:
        >>> _pub_request({"op": "pub", "node": "a", "output": "x", "value": 1})["metadata"]
        {}
    """
    metadata = message.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise TopicError("the metadata must be a JSON object", 'write it as {"key": value}')
    arrow_type = message.get("arrow_type")
    return {
        "op": "pub",
        "node": str(message.get("node")),
        "output": str(message.get("output")),
        "value": message.get("value"),
        "metadata": metadata,
        "arrow_type": None if arrow_type is None else str(arrow_type),
    }
