"""A node's parameters over the API: what ``doradus param list|get|set|delete`` call.

`register_param_routes` adds these routes to the coordinator's application::

    GET    /api/v1/dataflows/{name_or_id}/nodes/{node}/params         every parameter (NodeParams)
    GET    /api/v1/dataflows/{name_or_id}/nodes/{node}/params/{key}   one (NodeParam)
    PUT    /api/v1/dataflows/{name_or_id}/nodes/{node}/params/{key}   set it ({"value": ...})
    DELETE /api/v1/dataflows/{name_or_id}/nodes/{node}/params/{key}   delete it

A key is 1 to 256 bytes of printable text without ``/``; a value is any JSON value. The
coordinator keeps each node's parameters with its run (`Run.params`), saved with the rest of
its state (`doradus._control.persistence`), and sends the daemon running the node the node's
whole set with each change (``node_params``,
`doradus._control.daemon_link`), naming the key it set; the daemon tells the node, which gets a
``ParamUpdate`` or ``ParamDeleted`` event and sees them in ``Node.parameters()``, and keeps
them for the node's restarts (`doradus._runtime.params`). A daemon that connects again gets
every node's set (`param_orders`): what changed while it was away reaches its nodes then.
Parameters belong to one run: ``doradus restart`` starts the new run without them.

Errors: 404 no such dataflow, node or (``get``, ``delete``) parameter; 409 (``set``,
``delete``) a dataflow that is not running, or one ``doradus run`` runs alone (its nodes have
no daemon of the coordinator's to tell); 422 a key that is not one (empty, too long, with ``/``
or a control character), a value too large, or too many parameters.

Example::

    register_param_routes(app, state)   # in create_app
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import JsonValue

from doradus._control.models import ERROR_RESPONSES
from doradus._control.node_models import (
    MAX_PARAMS,
    MAX_VALUE_BYTES,
    NodeParam,
    NodeParams,
    ParamChanged,
    ParamValue,
    check_key,
)
from doradus._control.state import CoordinatorState, Run, fail, send_quietly

_ROUTE = "/api/v1/dataflows/{name_or_id}/nodes/{node}/params"
_DELETED = object()
"""What `_change` sets a parameter to when it is deleted."""


def register_param_routes(app: FastAPI, state: CoordinatorState) -> None:
    """Add the parameter routes (see the module documentation) to the coordinator's ``app``.

    Example:
        >>> from doradus._control.coordinator import create_app
        >>> paths = create_app().openapi()["paths"]
        >>> sorted(paths["/api/v1/dataflows/{name_or_id}/nodes/{node}/params/{key}"])
        ['delete', 'get', 'put']
    """

    @app.get(_ROUTE, response_model=NodeParams, responses=ERROR_RESPONSES)
    async def list_params(name_or_id: str, node: str) -> NodeParams:
        """Every parameter of the node (key → JSON value)."""
        run = state.find(name_or_id)
        _check_node(run, node)
        return NodeParams(dataflow=run.name, id=run.id, node=node, params=dict(run.params.get(node, {})))

    @app.get(_ROUTE + "/{key}", response_model=NodeParam, responses=ERROR_RESPONSES)
    async def get_param(name_or_id: str, node: str, key: str) -> NodeParam:
        """One parameter of the node; 404 when it has none of that key."""
        run = state.find(name_or_id)
        _check_node(run, node)
        params = run.params.get(node, {})
        if key not in params:
            raise _no_param(run, node, key)
        return NodeParam(dataflow=run.name, id=run.id, node=node, key=key, value=params[key])

    @app.put(_ROUTE + "/{key}", response_model=ParamChanged, responses=ERROR_RESPONSES)
    async def set_param(name_or_id: str, node: str, key: str, request: ParamValue) -> ParamChanged:
        """Set a parameter of the node: stored, then sent to the node (a ``ParamUpdate`` event).

        Setting it again to the same value is told again. At most 256 bytes of key, 64 KiB of
        JSON value and 256 parameters per node (422 beyond).
        """
        return await _change(state, name_or_id, node, key, request.value)

    @app.delete(_ROUTE + "/{key}", response_model=ParamChanged, responses=ERROR_RESPONSES)
    async def delete_param(name_or_id: str, node: str, key: str) -> ParamChanged:
        """Delete a parameter of the node (a ``ParamDeleted`` event); 404 when it has none of that key."""
        return await _change(state, name_or_id, node, key, _DELETED)


def param_orders(state: CoordinatorState, machine: str) -> list[dict[str, Any]]:
    """The ``node_params`` messages of every node ``machine`` runs, for its daemon connecting again.

    Only runs whose nodes ever had parameters are told (a daemon that has a node's set already
    tells the node nothing).

    Example:
        >>> state = CoordinatorState()
        >>> run = Run(id="r1", name="demo", path="/srv/df.yml", machine="vm", machines=["vm"])
        >>> run.params["camera"] = {"exposure": 0.02}
        >>> state.dataflows["r1"] = run
        >>> param_orders(state, "vm")
        [{'type': 'node_params', 'id': 'r1', 'node': 'camera', 'params': {'exposure': 0.02}, 'touched': None}]
    """
    orders = []
    for run in state.dataflows.values():
        if run.status != "running" or run.external or machine not in (run.machines or [run.machine]):
            continue
        for node in run.params:
            if run.placement.get(node, run.machine) == machine:
                orders.append(_order(run, node, None))
    return orders


def _order(run: Run, node: str, touched: str | None) -> dict[str, Any]:
    params = dict(run.params.get(node, {}))
    return {"type": "node_params", "id": run.id, "node": node, "params": params, "touched": touched}


async def _change(
    state: CoordinatorState, name_or_id: str, node: str, key: str, value: JsonValue | object
) -> ParamChanged:
    """Set (or, with `_DELETED`, delete) one parameter: checked, stored, saved, sent on."""
    run = state.find(name_or_id)
    _check_node(run, node)
    _check_key(key)
    deleting = value is _DELETED
    if run.external:
        raise fail(
            409,
            f"dataflow {run.name!r} runs under `doradus run`, whose nodes take no parameters",
            "start it with `doradus start` (after `doradus up`) to set parameters",
        )
    if run.status != "running":
        raise fail(409, f"dataflow {run.name!r} is not running (it is {run.status})", "start it again")
    params = dict(run.params.get(node, {}))
    if deleting:
        if key not in params:
            raise _no_param(run, node, key)
        shown = params.pop(key)
    else:
        _check_value(params, key, value)
        params[key] = shown = value
    run.params[node] = params  # kept even empty: a daemon connecting again learns of the delete
    if state.store is not None:
        state.store.save_params(run.id, node, params)
    forwarded = await _forward(state, run, node, None if deleting else key)
    action: Literal["set", "delete"] = "delete" if deleting else "set"
    done = f"Deleted {key!r} of" if deleting else f"Set {key!r} = {json.dumps(value)} on"
    late = "" if forwarded else " (stored: its daemon is not connected, and gets it when it is)"
    return ParamChanged(
        dataflow=run.name,
        id=run.id,
        node=node,
        key=key,
        value=shown,
        action=action,
        message=f"{done} node {node!r} of dataflow {run.name!r}{late}.",
        forwarded=forwarded,
    )


async def _forward(state: CoordinatorState, run: Run, node: str, touched: str | None) -> bool:
    """Send the node's parameters to the daemon running it; whether it is connected."""
    daemon = state.daemons.get(run.placement.get(node, run.machine))
    if daemon is None:
        return False
    await send_quietly(daemon, _order(run, node, touched))
    return True


def _check_node(run: Run, node: str) -> None:
    if node not in run.nodes:
        known = ", ".join(sorted(run.nodes)) or "none"
        raise fail(
            404,
            f"dataflow {run.name!r} has no node {node!r} (its nodes: {known})",
            f"see its nodes with `doradus node list --dataflow {run.name}`",
        )


def _check_key(key: str) -> None:
    problem = check_key(key)
    if problem is not None:
        raise fail(422, f"{problem} (not {key[:40]!r})", "name it with a short word, e.g. `exposure`")


def _check_value(params: dict[str, Any], key: str, value: object) -> None:
    size = len(json.dumps(value).encode())
    if size > MAX_VALUE_BYTES:
        raise fail(
            422,
            f"the value of {key!r} is {size} bytes of JSON, over the {MAX_VALUE_BYTES} a parameter may hold",
            "send large data on an output, not as a parameter",
        )
    if key not in params and len(params) >= MAX_PARAMS:
        raise fail(
            422,
            f"the node has {len(params)} parameters, the most it may have",
            "delete some (`doradus param delete`), or hold related values in one JSON object",
        )


def _no_param(run: Run, node: str, key: str) -> Exception:
    return fail(
        404,
        f"node {node!r} of dataflow {run.name!r} has no parameter {key!r}",
        f"see its parameters with `doradus param list {node} --dataflow {run.name}`",
    )
