"""The parameters of the nodes on this machine: kept per node, told to each node as they change.

The coordinator keeps each node's parameters (``doradus param set|delete``) and sends the
daemon running the node the node's whole set with each change, naming the key it set (if one);
`NodeParameters.replace` keeps that copy and tells the node what changed on its control socket
(``param_update``, ``param_deleted``: `doradus._wire.control`). Setting a key again to the same
value is told again (the node gets its event, as with dora-rs); a set the daemon already has
(the coordinator sending every set again after a reconnection) tells nothing.

A node that registers, at its start or started again by a restart, gets a ``param_update`` for
each parameter it has right after its ``config`` (`NodeParameters.send_all`): set parameters
survive its restarts, and a node not running when they changed gets them when it next runs.

Example::

    params = NodeParameters(state)
    params.replace("camera", {"exposure": 0.02}, touched="exposure")   # told if it runs
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from typing import Any

from doradus._runtime.actions import NodeActionError
from doradus._runtime.processes import NodeProcess
from doradus._runtime.state import RunState
from doradus._wire.control import ParamDeletedMessage, ParamUpdateMessage, send_control

ParamMessage = ParamUpdateMessage | ParamDeletedMessage
"""What a node is told of its parameters."""


def param_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], touched: str | None = None
) -> list[ParamMessage]:
    """The messages that take a node from parameters ``old`` to ``new`` (``touched``: told even if equal).

    Values are compared as JSON (``1`` and ``true`` differ).

    Example:
        >>> param_changes({"a": 1, "b": 2}, {"a": True, "c": 3})
        [{'op': 'param_deleted', 'key': 'b'}, {'op': 'param_update', 'key': 'a', 'value': True}, \
{'op': 'param_update', 'key': 'c', 'value': 3}]
        >>> param_changes({"a": 1}, {"a": 1}), param_changes({"a": 1}, {"a": 1}, touched="a")
        ([], [{'op': 'param_update', 'key': 'a', 'value': 1}])
    """
    told: list[ParamMessage] = [{"op": "param_deleted", "key": key} for key in old if key not in new]
    for key, value in new.items():
        if key == touched or key not in old or _json(old[key]) != _json(value):
            told.append({"op": "param_update", "key": key, "value": value})
    return told


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class NodeParameters:
    """Each node's parameters on this machine, as the coordinator last sent them.

    Thread safety: every method takes the run's lock but `send_all`, which expects it held
    (the control socket calls it while registering a node).

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Dataflow, NodeSpec
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(NodeSpec(id="a", kind="python"),))
        >>> params = NodeParameters(RunState.create(flow, run_id="r", machine="m", out_dir=Path("/tmp/r")))
        >>> params.replace("a", {"gain": 2}, touched="gain")   # not running: kept for its start
        [{'op': 'param_update', 'key': 'gain', 'value': 2}]
        >>> params.current("a")
        {'gain': 2}
    """

    def __init__(self, state: RunState) -> None:
        self._state = state
        self._values: dict[str, dict[str, Any]] = {}

    def current(self, node_id: str) -> dict[str, Any]:
        """The node's parameters (a copy; empty when it has none).

        Example::

            params.current("camera")   # {'exposure': 0.02}
        """
        with self._state.lock:
            return dict(self._values.get(node_id, {}))

    def replace(
        self, node_id: str, params: Mapping[str, Any], touched: str | None = None
    ) -> list[ParamMessage]:
        """The node's parameters are ``params`` now: tell it what changed (if it runs); what was told.

        Raises:
            NodeActionError: the run has no node ``node_id`` on this machine (``status`` 404).

        Example::

            params.replace("camera", {"exposure": 0.02}, touched="exposure")
        """
        state = self._state
        with state.lock:
            proc = state.nodes.get(node_id)
            if proc is None:
                known = ", ".join(state.nodes) or "none"
                raise NodeActionError(
                    f"the dataflow has no node {node_id!r} on this machine (nodes: {known})",
                    node_id=node_id,
                    status=404,
                )
            messages = param_changes(self._values.get(node_id, {}), params, touched)
            self._values[node_id] = dict(params)
            if proc.conn is not None and proc.registered and not proc.exited:
                self._send(proc.conn, messages)
        return messages

    def send_all(self, proc: NodeProcess, conn: socket.socket) -> None:
        """Tell a node registering now each parameter it has (the caller holds the run's lock).

        Example::

            control.after_config = params.send_all
        """
        self._send(conn, param_changes({}, self._values.get(proc.spec.id, {})))

    @staticmethod
    def _send(conn: socket.socket, messages: list[ParamMessage]) -> None:
        for message in messages:
            try:
                send_control(conn, message)
            except OSError:
                return  # it is ending: it gets its parameters when it registers again
