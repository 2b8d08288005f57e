"""How a node process finds its daemon and registers: spawned nodes, and ``path: dynamic`` ones.

A node Doradus spawned finds the daemon's control socket in `ENV_CONFIG`; a dynamic node
(started by hand) looks for a running dataflow that waits for its id. Either way it sends
``register`` and gets its `NodeConfig` back, with its ``shm`` link ends attached.

Example::

    sock, config, fds = attach(None)   # inside a node started by `doradus run`
"""

from __future__ import annotations

import json
import os
import socket

from doradus._exceptions import NodeError
from doradus._paths import runs_dir
from doradus._wire.control import recv_control, send_control
from doradus._wire.node_config import ENV_CONFIG, DynamicNodes, NodeConfig, NodeEnvironment


def attach(node_id: str | None) -> tuple[socket.socket, NodeConfig, list[int]]:
    """Register with the daemon of this node's dataflow.

    Args:
        node_id: the node's id; needed only for a ``path: dynamic`` node (a spawned node is
            whom the daemon started, whatever id it passes).

    Returns:
        The control socket, the node's configuration and the link ends handed over.

    Raises:
        NodeError: not started by Doradus and no dynamic node of that id waits, the daemon
            cannot be reached, or it refuses the node.

    Example:
        >>> attach(None)
        Traceback (most recent call last):
        ...
        doradus.NodeError: this process was not started by Doradus...
    """
    raw = os.environ.get(ENV_CONFIG)
    if raw:
        env: NodeEnvironment = json.loads(raw)
        # As with dora-rs, a spawned node is who the daemon started, whatever id it passes
        # (hub nodes hard-code one, e.g. dora-echo's Node("echo")).
        return _register(env["control"], env["node_id"], dynamic=False)
    if node_id is None:
        raise NodeError(
            "this process was not started by Doradus. Run it with `doradus run dataflow.yml`, "
            'or declare it `path: dynamic` in the dataflow and call Node("<its id>")'
        )
    return _register(_find_dynamic(node_id), node_id, dynamic=True)


def _find_dynamic(node_id: str) -> str:
    for entry in sorted(runs_dir().glob("*/dynamic.json")):
        try:
            waiting: DynamicNodes = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        if node_id in waiting.get("nodes", []):
            return str(waiting.get("control") or entry.parent / "control.sock")
    raise NodeError(
        f"no running dataflow has a dynamic node {node_id!r}. Start the dataflow first "
        f"(`doradus run dataflow.yml`), and check that it declares `id: {node_id}` with `path: dynamic`",
        node_id=node_id,
    )


def _register(control: str, node_id: str, *, dynamic: bool) -> tuple[socket.socket, NodeConfig, list[int]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        config, fds = _handshake(sock, control, node_id, dynamic)
    except BaseException:
        sock.close()  # a refused or failed registration keeps no descriptor
        raise
    return sock, config, fds


def _handshake(
    sock: socket.socket, control: str, node_id: str, dynamic: bool
) -> tuple[NodeConfig, list[int]]:
    try:
        sock.connect(control)
    except OSError as exc:
        raise NodeError(f"cannot reach the Doradus daemon at {control}: {exc}", node_id=node_id) from exc
    send_control(sock, {"op": "register", "node_id": node_id, "pid": os.getpid(), "dynamic": dynamic})
    message, fds = recv_control(sock)
    if message is None:
        raise NodeError("the Doradus daemon closed the connection while registering", node_id=node_id)
    if message["op"] == "error":
        raise NodeError(str(message.get("message")), node_id=node_id)
    if message["op"] != "config":
        raise NodeError(f"the Doradus daemon answered {message['op']!r} to registering", node_id=node_id)
    return message["config"], fds
