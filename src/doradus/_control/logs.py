"""A dataflow's log records for `doradus logs` and `start --attach`: from disk or the coordinator.

`find_logs` decides where the records of a name come from — a run folder on disk (no
coordinator needed) or a dataflow the coordinator knows — and returns them filtered by a
`LogQuery`; `follow_logs` streams a dataflow's records as they come, over the API's WebSocket.

Example::

    found = find_logs("demo", build_query(level="warn"), follow=False, connect=make_client)
    for record in found.records:
        print(record["message"])
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from doradus._control.client import ControlClient, ServiceUnreachable
from doradus._observability.query import LogQuery, local_log_source, read_log_source
from doradus._observability.records import NO_NODE

FOLLOW_BACKLOG = 10_000
"""How many matching records already there a follow starts with, unless told otherwise."""


@dataclass(frozen=True)
class FoundLogs:
    """The records `find_logs` found, and the node ids a node column must fit.

    ``records`` is a list, except when following: then an iterator that ends
    with the dataflow (it connects when first read).
    """

    records: Iterable[dict[str, Any]]
    nodes: list[str]
    """The nodes asked for; else the dataflow's nodes (on disk: those of the records read)."""


def find_logs(
    name_or_id: str,
    query: LogQuery,
    *,
    follow: bool,
    connect: Callable[[], ControlClient],
    base: Path | None = None,
) -> FoundLogs:
    """The records of ``name_or_id`` matching ``query``: from disk when it names a run there.

    ``name_or_id`` is a run folder, a ``.jsonl`` log file or a run id under
    ``base/out/`` (``base``: the current folder), read from disk; else a
    dataflow of the coordinator ``connect()`` reaches. With ``follow``, a run
    folder means the dataflow with the folder's name as id on the coordinator.

    Raises:
        ServiceUnreachable: No coordinator answered (the fix then also says
            how to read a finished `doradus run` from its folder).
        ApiError: The coordinator refused (e.g. no such dataflow).

    Example::

        find_logs("out/01a2...", build_query(tail=10), follow=False, connect=make_client).records
    """
    source = local_log_source(name_or_id, base or Path.cwd())
    if source is not None and not follow:
        return _disk_logs(source, query)
    if source is not None:  # a run `doradus run` registered: its id is the folder's name
        name_or_id = (source if source.is_dir() else source.parent).name
    client = connect()
    try:
        detail = client.get(f"/dataflows/{name_or_id}")  # a clear error for an unknown name
    except ServiceUnreachable as exc:
        if source is None:  # perhaps a finished `doradus run`, searched from elsewhere
            exc.fix += (
                f"; or, for a run of `doradus run`, give its folder: `doradus logs "
                f"<dataflow folder>/out/{name_or_id}`"
            )
        raise
    nodes = list(query.node or []) or list(detail.get("nodes") or {})
    if follow:
        backlog = query.tail if query.tail is not None else FOLLOW_BACKLOG
        return FoundLogs(follow_logs(client, name_or_id, backlog, query), nodes)
    return FoundLogs(search_logs(client, name_or_id, query), nodes)


def _disk_logs(source: Path, query: LogQuery) -> FoundLogs:
    seen: set[str] = set()

    def scan(found: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for record in found:
            seen.add(str(record.get("node") or NO_NODE))
            yield record

    records = query.apply(scan(read_log_source(source)))
    return FoundLogs(records, list(query.node or []) or sorted(seen))  # every node of the run


def _params(query: LogQuery | None) -> dict[str, Any]:
    """The API's log filters (``node``, ``level``, ``filter``, ``grep``, ``since``, ``until``)."""
    if query is None:
        return {"node": None}
    return {
        "node": query.node,
        "level": query.min_level,
        "filter": ",".join(sorted(query.levels)) if query.levels is not None else None,
        "grep": query.grep.pattern if query.grep is not None else None,
        "since": query.since,
        "until": query.until,
    }


def search_logs(client: ControlClient, name_or_id: str, query: LogQuery) -> list[dict[str, Any]]:
    """The records of the coordinator's dataflow ``name_or_id`` matching ``query``, oldest first.

    The coordinator filters; ``query.tail`` keeps only the last records.

    Example::

        search_logs(client, "demo", build_query(level="error", tail=20))
    """
    params = {**_params(query), "tail": query.tail}
    found: list[dict[str, Any]] = client.get(
        f"/dataflows/{name_or_id}/logs", params={k: v for k, v in params.items() if v is not None}
    )
    return found


def follow_logs(
    client: ControlClient, name_or_id: str, tail: int = FOLLOW_BACKLOG, query: LogQuery | None = None
) -> Iterator[dict[str, Any]]:
    """Records of a dataflow as they come (the last ``tail`` matching first), until it ends.

    ``query`` filters on the coordinator, on the backlog and on live records
    alike. Connects when first read.

    Example::

        for record in follow_logs(client, "demo", tail=0):
            print(record["message"])
    """
    from urllib.parse import urlencode

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    params = {"tail": tail, **_params(query)}
    encoded = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
    url = f"{client.address.ws}/dataflows/{name_or_id}/logs/follow?{encoded}"
    with connect(url, additional_headers=client.headers or None) as ws:
        while True:
            try:
                raw = ws.recv(timeout=0.5)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return
            yield cast("dict[str, Any]", json.loads(raw))
