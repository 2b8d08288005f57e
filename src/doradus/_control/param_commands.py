"""The parameter requests as ``doradus param`` makes them: the routes of `doradus._control.params`.

Each function makes one API call through a `ControlClient` and returns the API's own object;
the dataflow is found first with `doradus._control.node_commands.running_dataflow`. Keys go
into the URL quoted; a key holding ``/`` is refused (`doradus._control.node_models.check_key`: it
cannot be a URL segment).

Example::

    client = ControlClient(resolve_address(None))
    flow = running_dataflow(client, None)
    set_param(client, flow, "camera", "exposure", 0.02)["message"]
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from doradus._control.client import ControlClient

NEEDS_COORDINATOR = (
    "parameters are kept by a coordinator: start one with `doradus up`, then the dataflow with "
    "`doradus start` (a dataflow `doradus run` runs alone takes none)"
)
"""The fix ``doradus param`` gives when no coordinator answers."""


def params_path(dataflow: str, node: str, key: str | None = None) -> str:
    """The API path of a node's parameters (of one of them, with ``key``).

    Example:
        >>> params_path("demo", "camera", "roi x")
        '/dataflows/demo/nodes/camera/params/roi%20x'
    """
    base = f"/dataflows/{quote(dataflow, safe='')}/nodes/{quote(node, safe='')}/params"
    return base if key is None else f"{base}/{quote(key, safe='')}"


def list_params(client: ControlClient, dataflow: str, node: str) -> Any:
    """Every parameter of ``node`` (a `NodeParams`: ``params`` is key → value).

    Example::

        list_params(client, "demo", "camera")["params"]   # {'exposure': 0.02}
    """
    return client.get(params_path(dataflow, node))


def get_param(client: ControlClient, dataflow: str, node: str, key: str) -> Any:
    """One parameter of ``node`` (a `NodeParam`).

    Raises:
        ApiError: 404 no such dataflow, node or parameter.

    Example::

        get_param(client, "demo", "camera", "exposure")["value"]   # 0.02
    """
    return client.get(params_path(dataflow, node, key))


def set_param(client: ControlClient, dataflow: str, node: str, key: str, value: Any) -> Any:
    """Set a parameter of ``node`` to ``value`` (any JSON value); the `ParamChanged` answer.

    Raises:
        ApiError: 404 no such dataflow or node; 409 the dataflow is not running, or is run by
            ``doradus run``; 422 a key or value too large, or too many parameters.

    Example::

        set_param(client, "demo", "camera", "roi", {"x": 1})["forwarded"]   # True
    """
    return client.request("PUT", params_path(dataflow, node, key), {"value": value})


def delete_param(client: ControlClient, dataflow: str, node: str, key: str) -> Any:
    """Delete a parameter of ``node``; the `ParamChanged` answer (``value``: the one it had).

    Raises:
        ApiError: 404 no such dataflow, node or parameter; 409 the dataflow is not running.

    Example::

        delete_param(client, "demo", "camera", "exposure")["message"]
    """
    return client.request("DELETE", params_path(dataflow, node, key))
