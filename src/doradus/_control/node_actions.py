"""Steering the nodes of a running dataflow over the API: pause, resume, stop, restart (new configuration).

`register_node_routes` adds these routes to the coordinator's application::

    POST /api/v1/dataflows/{name_or_id}/nodes/{node}/pause     hold the node's input messages
    POST /api/v1/dataflows/{name_or_id}/nodes/{node}/resume    deliver them again
    POST /api/v1/dataflows/{name_or_id}/nodes/{node}/stop      end it for good (NodeStopRequest)
    POST /api/v1/dataflows/{name_or_id}/nodes/{node}/restart   stop it, start it again (NodeRestartRequest)
    POST /api/v1/dataflows/{name_or_id}/pause                  pause every running node
    POST /api/v1/dataflows/{name_or_id}/resume                 resume every paused node

Each answers 202 with a `NodeActionAccepted` once the action is on its way: the daemon running
the node carries it out (a ``node_action`` message on its link), or, for a dataflow ``doradus
run`` runs itself, its ``doradus run`` does when it next reports (``node_actions`` in the
reply). The node's ``state`` then shows it (``paused``, ``restarting``, ``running``) and its
``restarts`` count goes up. 404: no such dataflow or node; 409: the dataflow or node is not
running, or the node cannot be restarted (its backend, kind or machines: the error says
which and the fix); 422: ``args`` that cannot be split, or a new ``data_format``/``schema``
the dataflow's checks refuse (`doradus._dataflow.format_change`: the checker's message and
fix). An accepted format change is written into the coordinator's copy of the dataflow's
text, which the stream's edges and a later ``doradus restart`` read. See docs/steering.md
for what each action does to messages.

Example::

    register_node_routes(app, state)   # in create_app
"""

from __future__ import annotations

import asyncio
import shlex
from typing import Any

from fastapi import FastAPI

from doradus._control.models import (
    ErrorResponse,
    InvalidRequest,
    NodeAction,
    NodeActionAccepted,
    NodeActionName,
    NodeRestartRequest,
    NodeStopRequest,
)
from doradus._control.state import CoordinatorState, Run, fail, send_quietly
from doradus._dataflow.format_change import FormatChange

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": InvalidRequest},
    404: {"model": ErrorResponse},
    409: {"model": ErrorResponse},
    422: {"model": InvalidRequest},
}
_LIVE = ("running", "paused")
"""Node states an action may apply to."""
_PAST = {"pause": "Paused", "resume": "Resumed", "stop": "Stopping", "restart": "Restarting"}


def register_node_routes(app: FastAPI, state: CoordinatorState) -> None:
    """Add the node action routes (see the module documentation) to the coordinator's ``app``.

    Example:
        >>> from doradus._control.coordinator import create_app
        >>> paths = create_app().openapi()["paths"]
        >>> "/api/v1/dataflows/{name_or_id}/nodes/{node}/pause" in paths
        True
    """
    common: dict[str, Any] = {"response_model": NodeActionAccepted, "status_code": 202, "responses": _ERRORS}

    @app.post("/api/v1/dataflows/{name_or_id}/nodes/{node}/pause", **common)
    async def pause_node(name_or_id: str, node: str) -> NodeActionAccepted:
        """Hold the node's input messages: they queue (the oldest dropped past ``queue_size``)."""
        return await _act(state, name_or_id, node, "pause", None)

    @app.post("/api/v1/dataflows/{name_or_id}/nodes/{node}/resume", **common)
    async def resume_node(name_or_id: str, node: str) -> NodeActionAccepted:
        """Deliver a paused node's messages again, those queued first."""
        return await _act(state, name_or_id, node, "resume", None)

    @app.post("/api/v1/dataflows/{name_or_id}/nodes/{node}/stop", **common)
    async def stop_node(name_or_id: str, node: str, request: NodeStopRequest) -> NodeActionAccepted:
        """End the node for good (Stop, SIGTERM after the grace, SIGKILL); the dataflow runs on.

        The nodes reading its outputs see those inputs close (``InputClosed``); its state
        becomes ``stopped``. To stop the whole dataflow: ``POST .../{name_or_id}/stop``.
        """
        return await _act(
            state, name_or_id, node, "stop", NodeRestartRequest(grace_seconds=request.grace_seconds)
        )

    @app.post("/api/v1/dataflows/{name_or_id}/nodes/{node}/restart", **common)
    async def restart_node(name_or_id: str, node: str, request: NodeRestartRequest) -> NodeActionAccepted:
        """Stop the node (Stop, SIGTERM after the grace) and start it again with ``env`` and ``args``.

        Its edges stay wired: its peers see no ``InputClosed``; what is sent to it meanwhile is
        dropped and counted (``restart_dropped``). With ``data_format`` (and ``schema``) its
        outputs change format, checked first as ``doradus check`` would (422 when refused,
        nothing stopped); its receivers switch their decoders before the new process sends.
        """
        return await _act(state, name_or_id, node, "restart", request)

    @app.post("/api/v1/dataflows/{name_or_id}/pause", **common)
    async def pause_dataflow(name_or_id: str) -> NodeActionAccepted:
        """Pause every running node of the dataflow."""
        return await _act(state, name_or_id, None, "pause", None)

    @app.post("/api/v1/dataflows/{name_or_id}/resume", **common)
    async def resume_dataflow(name_or_id: str) -> NodeActionAccepted:
        """Resume every paused node of the dataflow."""
        return await _act(state, name_or_id, None, "resume", None)


async def _act(
    state: CoordinatorState,
    name_or_id: str,
    node: str | None,
    action: NodeActionName,
    request: NodeRestartRequest | None,
) -> NodeActionAccepted:
    """Check the action, then send it on: to the daemons running the nodes, or to the ``doradus run``."""
    run = state.find(name_or_id)
    if run.status != "running":
        raise fail(
            409,
            f"dataflow {run.name!r} is not running (it is {run.status})",
            "start it again (`doradus start`)",
        )
    nodes = _target_nodes(run, node, action)
    request = request or NodeRestartRequest()
    change = FormatChange(request.data_format, request.schema_value())
    base, new_text = run.text, None
    if action == "restart" and node is not None:
        _check_args(request.args)
        await _check_restartable(run, node)
        if not change.empty:
            new_text = await _check_format(run, node, change)
    fields: dict[str, Any] = {
        "env": request.env,
        "args": request.args,
        "grace_seconds": request.grace_seconds,
        "data_format": change.data_format,
        "schema": change.schema,
    }
    if run.external:
        seq = run.actions[-1].seq + 1 if run.actions else 1
        run.actions.append(NodeAction(seq=seq, action=action, node=node, **fields))
        state.save(run)
    else:
        await _send_to_daemons(state, run, nodes, action, fields)
    if new_text is not None and node is not None:
        _record_text(state, run, new_text if run.text == base else _rewritten(run, node, change))
    what = f"node {node!r}" if node is not None else f"{len(nodes)} node(s)"
    return NodeActionAccepted(
        message=f"{_PAST[action]} {what} of dataflow {run.name!r}.",
        dataflow=run.name,
        id=run.id,
        action=action,
        nodes=nodes,
    )


def _target_nodes(run: Run, node: str | None, action: NodeActionName) -> list[str]:
    """The nodes the action applies to; 404 for a node the dataflow lacks, 409 for one not running."""
    if node is None:
        wanted = ("running",) if action == "pause" else ("paused",) if action == "resume" else _LIVE
        nodes = [n for n, status in run.nodes.items() if status.state in wanted]
        if not nodes:
            raise fail(
                409,
                f"dataflow {run.name!r} has no {' or '.join(wanted)} node to {action}",
                f"see its nodes' states with `doradus status {run.name}`",
            )
        return nodes
    status = run.nodes.get(node)
    if status is None:
        raise fail(
            404,
            f"dataflow {run.name!r} has no node {node!r}",
            f"see its nodes with `doradus status {run.name}`",
        )
    if status.state not in _LIVE:
        raise fail(
            409,
            f"node {node!r} of dataflow {run.name!r} is not running (it is {status.state})",
            "wait until it runs" if status.state in ("pending", "restarting") else "start the dataflow again",
        )
    return [node]


def _check_args(args: str | None) -> None:
    """422 when ``args`` cannot be split as a shell would."""
    try:
        shlex.split(args or "")
    except ValueError as exc:
        raise fail(
            422, f"the arguments {args!r} cannot be read: {exc}", "quote them as a shell would"
        ) from None


async def _check_restartable(run: Run, node: str) -> None:
    """409 when the node cannot be restarted with its edges kept (read from the dataflow's text)."""
    if run.text is None:
        return  # an external run: its `doradus run` refuses it, and logs why
    from doradus._dataflow.loader import load_dataflow_text
    from doradus._exceptions import DescriptorError
    from doradus._runtime.restart import restart_refusal

    def refusal() -> str | None:
        try:
            flow = load_dataflow_text(run.text or "", run.path, extra_env=run.env)
        except DescriptorError:
            return None  # it started from this text: the daemon decides
        found = restart_refusal(flow, node, run.placement)
        return None if found is None else str(found)

    problem = await asyncio.to_thread(refusal)
    if problem is not None:
        error, _, fix = problem.partition("; ")
        raise fail(409, error, fix or None)


async def _check_format(run: Run, node: str, change: FormatChange) -> str | None:
    """422 when the dataflow's checks refuse ``change``; the dataflow's text with it applied.

    None for an external run (its ``doradus run`` checks it, and logs a refusal). When the
    coordinator cannot load the run's own text (its schema files are on other machines), the
    text is changed unchecked and the daemon checks it.
    """
    if run.text is None:
        return None
    from doradus._dataflow.format_change import apply_format_change, changed_text, first_problem
    from doradus._dataflow.loader import load_dataflow_text
    from doradus._exceptions import DescriptorError

    text = run.text

    def check() -> tuple[str | None, tuple[str, str | None] | None]:
        try:
            load_dataflow_text(text, run.path, extra_env=run.env)
        except DescriptorError:
            return changed_text(text, run.path, node, change), None  # the daemon decides
        try:
            return apply_format_change(text, run.path, node, change, extra_env=run.env)[0], None
        except DescriptorError as exc:
            return None, first_problem(exc)

    try:
        new_text, problem = await asyncio.to_thread(check)
    except DescriptorError:
        return None  # it started from this text: the daemon decides
    if problem is not None:
        message, fix = problem
        raise fail(422, f"the new data format of node {node!r} is refused: {message}", fix)
    return new_text


def _rewritten(run: Run, node: str, change: FormatChange) -> str | None:
    """The run's text as it is now (another change came meanwhile) with ``change`` written in."""
    from doradus._dataflow.format_change import changed_text
    from doradus._exceptions import DescriptorError

    try:
        return changed_text(run.text or "", run.path, node, change)
    except DescriptorError:
        return None


def _record_text(state: CoordinatorState, run: Run, text: str | None) -> None:
    """The run's text says the new format: what the stream's edges and ``doradus restart`` read."""
    if text is None:
        return
    run.text = text
    state.save(run)
    for observer in state.observers:
        # The live stream keeps each run's edges as read from its text (`StreamHub.facts`):
        # forgetting them makes it read the new text at its next update.
        facts = getattr(observer, "facts", None)
        if isinstance(facts, dict):
            facts.pop(run.id, None)


async def _send_to_daemons(
    state: CoordinatorState, run: Run, nodes: list[str], action: NodeActionName, fields: dict[str, Any]
) -> None:
    """A ``node_action`` to each daemon running some of ``nodes``; 409 if one is not connected."""
    by_machine: dict[str, list[str]] = {}
    for node_id in nodes:
        by_machine.setdefault(run.placement.get(node_id, run.machine), []).append(node_id)
    missing = [m for m in by_machine if m not in state.daemons]
    if missing:
        raise fail(
            409,
            f"the daemon of machine {missing[0]!r} running dataflow {run.name!r} is not connected",
            "start it again (`doradus daemon`), or wait until it reconnects",
        )
    for machine, targets in by_machine.items():
        message = {"type": "node_action", "id": run.id, "action": action, "nodes": targets, **fields}
        await send_quietly(state.daemons[machine], message)
