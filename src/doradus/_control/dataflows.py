"""The dataflows of a coordinator, as the commands ask for them: start, stop, restart, list, top.

Each function makes the API calls one command needs through a `ControlClient` and returns the
API's own objects (dicts as ``docs/cli.md`` shows them), sorted or filtered as asked.

Example::

    client = ControlClient(resolve_address(None))
    for flow in list_dataflows(client, status="running", sort_by="name"):
        print(flow["name"], flow["id"])
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from doradus._control.client import ApiError, ControlClient
from doradus._observability.records import parse_timestamp

SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "name": lambda d: d["name"],
    "started": lambda d: parse_timestamp(d["started_at"]),
    "status": lambda d: d["status"],
}
"""How `list_dataflows` can sort: by name, by start time or by status."""
STATUSES = ("running", "finished", "failed", "stopped")
"""A dataflow's status in the API."""
RESTART_SPAWN_SECONDS = 45.0
"""How long a restart may take beyond the stop's grace: the coordinator spawns the nodes again."""


def list_dataflows(client: ControlClient, status: str | None = None, sort_by: str = "started") -> list[Any]:
    """The coordinator's dataflows (only those of ``status`` if given), sorted by a `SORT_KEYS` key.

    Raises:
        ServiceUnreachable: No coordinator answered.
        ApiError: The coordinator refused.

    Example::

        list_dataflows(client, status="failed", sort_by="name")   # [{"name": "demo", ...}]
    """
    flows = client.get("/dataflows")
    return sorted((d for d in flows if status in (None, d["status"])), key=SORT_KEYS[sort_by])


def running_ids(client: ControlClient) -> list[str]:
    """The ids of the running dataflows, in the coordinator's order.

    Example::

        running_ids(client)   # ['01a2...']
    """
    return [d["id"] for d in client.get("/dataflows") if d["status"] == "running"]


def node_snapshot(client: ControlClient, name_or_id: str | None = None) -> list[dict[str, Any]]:
    """One object per node of the running dataflows (or of ``name_or_id``), sorted.

    Each is the node's API object plus ``dataflow`` (the name), ``dataflow_id``
    and ``node`` (its id), sorted by those three: what ``doradus top`` shows.

    Example::

        node_snapshot(client)[0]["cpu_percent"]   # 3.5
    """
    if name_or_id:
        flows = [client.get(f"/dataflows/{name_or_id}")]
    else:
        flows = []
        for run_id in running_ids(client):
            try:
                flows.append(client.get(f"/dataflows/{run_id}"))
            except ApiError:
                continue  # ended and forgotten between the two calls
    nodes = [
        {"dataflow": f["name"], "dataflow_id": f["id"], "node": node_id, **node}
        for f in flows
        for node_id, node in f["nodes"].items()
    ]
    return sorted(nodes, key=lambda n: (n["dataflow"], n["dataflow_id"], n["node"]))


def start_dataflow(
    client: ControlClient,
    path: Path,
    text: str,
    *,
    name: str | None = None,
    env: dict[str, str] | None = None,
    log_level: str | None = None,
) -> Any:
    """Start the dataflow whose file is at ``path`` and says ``text``; the coordinator's answer.

    The coordinator never opens the file: it gets the text checked here, and
    the path for the folder the nodes run from.

    Example::

        started = start_dataflow(client, Path("dataflow.yml"), text, name="demo")
        started["id"], started["nodes"]
    """
    body = {
        "path": str(path.resolve()),
        "text": text,
        "name": name,
        "env": env or {},
        "log_level": log_level.upper() if log_level else None,
    }
    return client.post("/dataflows", body)


def restart_dataflow(client: ControlClient, name_or_id: str, grace: float) -> Any:
    """Stop ``name_or_id`` (``grace`` seconds for its nodes), start it again; the new dataflow.

    The request waits for both, so the client's timeout is raised to cover them.

    Example::

        restart_dataflow(client, "demo", grace=5.0)["id"]
    """
    client.timeout = max(client.timeout, grace + RESTART_SPAWN_SECONDS)
    return client.post(f"/dataflows/{name_or_id}/restart", {"grace_seconds": grace})


def stop_dataflow(
    client: ControlClient, name_or_id: str, *, grace: float | None = None, force: bool = False
) -> Any:
    """Ask the coordinator to stop ``name_or_id``; its answer (the dataflow's ``name`` and ``id``).

    Nodes get Stop, then SIGTERM after ``grace`` seconds (the coordinator's
    default when None), or at once with ``force``.

    Example::

        stop_dataflow(client, "demo", grace=5.0)["id"]
    """
    body: dict[str, Any] = {"grace_seconds": grace} if grace is not None else {}
    return client.post(f"/dataflows/{name_or_id}/stop", {**body, "force": force})


def clean_dataflows(client: ControlClient, older_than: float | None = None) -> Any:
    """Forget the ended dataflows (those ended ``older_than`` seconds ago or more, if given).

    Returns ``{"removed": N, "ids": [...]}``; running dataflows are never touched.

    Example::

        clean_dataflows(client, older_than=3600.0)["removed"]
    """
    return client.post("/dataflows/clean", {"older_than": older_than})
