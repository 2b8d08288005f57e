"""Steering a running node: pause and resume its inputs, and why an action is refused.

A paused node keeps running but is handed no input messages: they queue per input (the
oldest dropped past ``queue_size``, counted in ``dropped``) until it is resumed, and its
control events (``Stop``, ``InputClosed``, errors) still reach it. The supervisor sends the
node ``pause`` or ``resume`` on its control socket (`doradus._wire.control`), and reports
the node's state as ``paused`` meanwhile. See docs/steering.md.

Restarting a node lives in `doradus._runtime.restart`.

Example::

    pause_node(state, "detector")     # its input rate falls to 0
    resume_node(state, "detector")    # what queued comes first
"""

from __future__ import annotations

from doradus._exceptions import NodeError
from doradus._runtime.processes import NodeProcess
from doradus._runtime.state import RunState
from doradus._wire.control import PauseMessage, ResumeMessage, send_control

PAUSE: PauseMessage = {"op": "pause"}
RESUME: ResumeMessage = {"op": "resume"}


class NodeActionError(NodeError):
    """A node action (pause, resume, restart) cannot be done; the message says why and the fix.

    ``status`` is the HTTP status the control API answers with: 404 for a node the run does
    not have, 409 for one that is not running (or cannot be restarted).

    Example:
        >>> error = NodeActionError("no node 'x'", node_id="x", status=404)
        >>> error.status, str(error)
        (404, "no node 'x'")
    """

    def __init__(self, message: str, *, node_id: str | None = None, status: int = 409) -> None:
        super().__init__(message, node_id=node_id)
        self.status = status


class RestartNotSupported(NodeActionError):
    """A node has links on a backend whose links cannot survive its restart (`Backend.restarts_links`).

    Example:
        >>> raise RestartNotSupported("node 'a' cannot be restarted: ...", node_id="a")
        Traceback (most recent call last):
        ...
        doradus._runtime.actions.RestartNotSupported: node 'a' cannot be restarted: ...
    """


def running_node(state: RunState, node_id: str) -> NodeProcess:
    """The record of a node of this run that runs now (caller holds the run's lock).

    Raises:
        NodeActionError: no such node (404), or it is not running (409).

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Dataflow, NodeSpec
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(NodeSpec(id="a", kind="python"),))
        >>> running_node(RunState.create(flow, run_id="r", machine="m", out_dir=Path("/tmp/r")), "a")
        Traceback (most recent call last):
        ...
        doradus._runtime.actions.NodeActionError: node 'a' is not running (it has not registered yet)...
    """
    proc = state.nodes.get(node_id)
    if proc is None:
        known = ", ".join(state.nodes) or "none"
        raise NodeActionError(
            f"the dataflow has no node {node_id!r} on this machine (nodes: {known})",
            node_id=node_id,
            status=404,
        )
    if proc.restarting:
        raise NodeActionError(
            f"node {node_id!r} is restarting: try again once it runs", node_id=node_id, status=409
        )
    if proc.exited:
        raise NodeActionError(
            f"node {node_id!r} is not running (it has ended): start the dataflow again",
            node_id=node_id,
            status=409,
        )
    if proc.conn is None or not proc.registered:
        raise NodeActionError(
            f"node {node_id!r} is not running (it has not registered yet): try again once it runs",
            node_id=node_id,
            status=409,
        )
    return proc


def pause_node(state: RunState, node_id: str) -> None:
    """Hold the messages of a node's inputs until `resume_node` (idempotent).

    Raises:
        NodeActionError: no such node (404), or it is not running (409).

    Example::

        pause_node(state, "detector")
    """
    _set_paused(state, node_id, paused=True)


def resume_node(state: RunState, node_id: str) -> None:
    """Deliver a paused node's messages again, the queued ones first (idempotent).

    Raises:
        NodeActionError: no such node (404), or it is not running (409).

    Example::

        resume_node(state, "detector")
    """
    _set_paused(state, node_id, paused=False)


def _set_paused(state: RunState, node_id: str, *, paused: bool) -> None:
    with state.lock:
        proc = running_node(state, node_id)
        conn = proc.conn
        assert conn is not None
        try:
            send_control(conn, PAUSE if paused else RESUME)
        except OSError as exc:
            raise NodeActionError(
                f"node {node_id!r} is not running (its control connection closed: {exc})",
                node_id=node_id,
                status=409,
            ) from exc
        proc.paused = paused
