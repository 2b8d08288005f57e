"""The node actions as the ``doradus node`` commands ask for them: which dataflow, then the request.

Each function makes the API calls one command needs through a `ControlClient` (the routes of
`doradus._control.node_actions`) and returns the API's own objects.

Example::

    client = ControlClient(resolve_address(None))
    flow = running_dataflow(client, None)          # the one running dataflow
    request_node_action(client, flow, "detector", "pause")["message"]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from doradus._control.client import ApiError, ControlClient

RESTART_WAIT_SECONDS = 60.0
"""How long ``node restart`` waits, beyond the grace, to see the new process run."""
POLL_INTERVAL = 0.2
"""Seconds between two looks at the node while waiting for its restart."""


@dataclass(frozen=True)
class NodeChange:
    """A node's new configuration, as ``doradus node set`` asks for it (None: unchanged).

    ``env`` is merged over the node's values, ``args`` replaces its arguments, ``data_format``
    and ``schema`` (``file[:Type]``, relative to the dataflow file's folder) set its outputs'
    format.

    Example:
        >>> NodeChange(data_format="avro", schema="reading.avsc").body()
        {'env': None, 'args': None, 'data_format': 'avro', 'schema': 'reading.avsc'}
    """

    env: dict[str, str] | None = None
    args: str | None = None
    data_format: str | None = None
    schema: str | None = None

    def body(self) -> dict[str, Any]:
        """Its part of a restart request's body (the keys of `NodeRestartRequest`).

        Example:
            >>> sorted(NodeChange(env={"X": "2"}).body())
            ['args', 'data_format', 'env', 'schema']
        """
        return {"env": self.env, "args": self.args, "data_format": self.data_format, "schema": self.schema}


def running_dataflow(client: ControlClient, name: str | None) -> str:
    """The dataflow a node command acts on: ``name``, else the one that runs.

    Raises:
        ApiError: ``name`` is None and no dataflow, or several, run (409, with the fix).

    Example::

        running_dataflow(client, None)   # 'demo'
    """
    if name:
        return name
    running = [d["name"] for d in client.get("/dataflows") if d["status"] == "running"]
    if len(running) == 1:
        return str(running[0])
    if not running:
        raise ApiError(409, "no dataflow is running", "start one (`doradus start dataflow.yml`)")
    raise ApiError(
        409,
        f"{len(running)} dataflows are running ({', '.join(sorted(running))})",
        "name one with --dataflow NAME",
    )


def request_node_action(
    client: ControlClient,
    dataflow: str,
    node: str,
    action: str,
    *,
    change: NodeChange | None = None,
    grace: float = 5.0,
) -> Any:
    """Ask for ``action`` (pause, resume, stop, restart) on ``node`` of ``dataflow``; its answer.

    Raises:
        ApiError: 404 no such dataflow or node; 409 not running, or not restartable; 422 the
            new arguments or data format refused (the checker's message and fix).

    Example::

        request_node_action(client, "demo", "detector", "restart", change=NodeChange(env={"X": "2"}))
    """
    body: dict[str, Any] | None = None
    if action == "restart":
        body = {**(change or NodeChange()).body(), "grace_seconds": grace}
    elif action == "stop":
        body = {"grace_seconds": grace}
    return client.post(f"/dataflows/{dataflow}/nodes/{node}/{action}", body)


def node_infos(client: ControlClient, dataflow: str | None) -> list[dict[str, Any]]:
    """The `NodeInfo` of every node of ``dataflow``, else of every running dataflow; sorted.

    Sorted by dataflow name, dataflow id and node id: what ``doradus node list`` shows.

    Example::

        node_infos(client, None)[0]["machine"]   # 'robot-1'
    """
    if dataflow:
        nodes: list[dict[str, Any]] = client.get(f"/dataflows/{dataflow}/nodes")
    else:
        nodes = []
        for flow in client.get("/dataflows"):
            if flow["status"] != "running":
                continue
            try:
                nodes.extend(client.get(f"/dataflows/{flow['id']}/nodes"))
            except ApiError:
                continue  # ended and forgotten between the two calls
    return sorted(nodes, key=lambda n: (n["dataflow"], n["dataflow_id"], n["node"]))


def node_info(client: ControlClient, dataflow: str, node: str) -> dict[str, Any]:
    """The `NodeInfo` of one node (state, machine, inputs, outputs, parameters...).

    Raises:
        ApiError: 404 no such dataflow or node.

    Example::

        node_info(client, "demo", "camera")["outputs"]["image"]["backends"]   # ['shm']
    """
    found: dict[str, Any] = client.get(f"/dataflows/{dataflow}/nodes/{node}")
    return found


def node_status(client: ControlClient, dataflow: str, node: str) -> dict[str, Any]:
    """The node's `NodeStatus` object (``state``, ``restarts``, ...).

    Example::

        node_status(client, "demo", "detector")["restarts"]   # 1
    """
    nodes: dict[str, Any] = client.get(f"/dataflows/{dataflow}")["nodes"]
    found: dict[str, Any] = nodes.get(node) or {}
    return found


def wait_restarted(
    client: ControlClient, dataflow: str, node: str, before: int, grace: float
) -> dict[str, Any]:
    """Wait until the node's restart count passed ``before`` and it runs again; its `NodeStatus`.

    Raises:
        ApiError: 504 when it does not run again within ``grace`` + `RESTART_WAIT_SECONDS`.

    Example::

        wait_restarted(client, "demo", "detector", before=0, grace=5.0)["restarts"]   # 1
    """
    deadline = time.monotonic() + grace + RESTART_WAIT_SECONDS
    while True:
        status = node_status(client, dataflow, node)
        if int(status.get("restarts") or 0) > before and status.get("state") in ("running", "paused"):
            return status
        if status.get("state") in ("finished", "failed", "stopped", "lost"):
            raise ApiError(
                409,
                f"node {node!r} of dataflow {dataflow!r} ended ({status.get('state')}) "
                "instead of running again",
                f"see why with `doradus logs {dataflow} --node {node}`",
            )
        if time.monotonic() > deadline:
            raise ApiError(
                504,
                f"node {node!r} of dataflow {dataflow!r} did not run again in time",
                f"see its logs with `doradus logs {dataflow} --node {node}`",
            )
        time.sleep(POLL_INTERVAL)


def wait_ended(client: ControlClient, dataflow: str, node: str, grace: float) -> dict[str, Any]:
    """Wait until the node has ended (after ``node stop``); its `NodeStatus`.

    Raises:
        ApiError: 504 when it still runs after ``grace`` + `RESTART_WAIT_SECONDS`.

    Example::

        wait_ended(client, "demo", "detector", grace=5.0)["state"]   # 'stopped'
    """
    deadline = time.monotonic() + grace + RESTART_WAIT_SECONDS
    while True:
        status = node_status(client, dataflow, node)
        if status.get("state") in ("finished", "failed", "stopped", "lost"):
            return status
        if time.monotonic() > deadline:
            raise ApiError(
                504,
                f"node {node!r} of dataflow {dataflow!r} did not end in time",
                f"see its logs with `doradus logs {dataflow} --node {node}`",
            )
        time.sleep(POLL_INTERVAL)
