"""The coordinator's log routes: a dataflow's records searched (``GET .../logs``) or followed.

Both serve the records the coordinator keeps for the dataflow (the last 10 000, saved
across a restart by `doradus._control.persistence`), filtered as `doradus logs` asks
(`doradus._observability.query`).

Example::

    register_log_routes(app, state)
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, WebSocket, WebSocketDisconnect

from doradus._control.daemon_link import close_reason
from doradus._control.models import ERROR_RESPONSES, LogRecord
from doradus._control.state import CoordinatorState, Run, fail
from doradus._observability.query import QueryError, build_query


def register_log_routes(app: FastAPI, state: CoordinatorState) -> None:
    """Add ``GET .../logs`` and the ``.../logs/follow`` WebSocket to ``app``.

    Example::

        register_log_routes(app, state)
    """

    @app.get("/api/v1/dataflows/{name_or_id}/logs", response_model=list[LogRecord], responses=ERROR_RESPONSES)
    async def logs(
        name_or_id: str,
        tail: int | None = Query(None, ge=0, description="Only the last N matching records."),
        node: Annotated[
            list[str] | None, Query(description="Only these nodes' records (repeat: node=a&node=b).")
        ] = None,
        level: str | None = Query(
            None, description="Minimum level: TRACE, DEBUG, INFO, WARN, ERROR or FATAL (any case)."
        ),
        filter: str | None = Query(None, description="Only these exact levels, comma separated: WARN,ERROR."),
        grep: str | None = Query(
            None, description="Python regular expression searched in the message and in str(fields)."
        ),
        since: float | None = Query(None, description="Only records at or after this time (epoch seconds)."),
        until: float | None = Query(None, description="Only records at or before this time (epoch seconds)."),
    ) -> list[LogRecord]:
        """The dataflow's log records, oldest first (the last 10 000 are kept), filtered.

        Every given filter must hold; ``tail`` then keeps the last N. An unknown
        level or an invalid regular expression is a 422 naming the parameter.
        """
        try:
            query = build_query(node=node, level=level, levels=filter, grep=grep, since=since, until=until)
        except QueryError as exc:
            raise fail(422, str(exc), exc.fix) from exc
        run = state.find(name_or_id)
        records = [x for x in run.logs if query.matches(dict(x))] if query.filters else list(run.logs)
        return records[-tail:] if tail else ([] if tail == 0 else records)

    @app.websocket("/api/v1/dataflows/{name_or_id}/logs/follow")
    async def follow(
        websocket: WebSocket,
        name_or_id: str,
        tail: int = Query(0, ge=0, description="Send the last N matching records first."),
        node: Annotated[list[str] | None, Query(description="Only these nodes (repeatable).")] = None,
        level: str | None = Query(None, description="Minimum level."),
        filter: str | None = Query(None, description="Only these exact levels, comma separated."),
        grep: str | None = Query(None, description="Regular expression searched in message and fields."),
        since: float | None = Query(None, description="Only records at or after this time (epoch seconds)."),
        until: float | None = Query(None, description="Only records at or before this time (epoch seconds)."),
    ) -> None:
        """Stream log records as JSON objects (the last ``tail`` matching first) until the dataflow ends.

        The filters are those of ``GET .../logs`` and apply to the backlog and to
        live records. Unknown dataflow: accepted, then closed with code 4404; a bad
        filter: 4422; the close reason says why.
        """
        await websocket.accept()
        try:
            query = build_query(node=node, level=level, levels=filter, grep=grep, since=since, until=until)
            run = state.find(name_or_id)
        except QueryError as exc:
            await websocket.close(code=4422, reason=close_reason(str(exc)))
            return
        except HTTPException as exc:  # 4404: no such dataflow; 4409: an ambiguous id prefix
            detail: Any = exc.detail
            await websocket.close(code=4000 + exc.status_code, reason=close_reason(str(detail["error"])))
            return
        await _stream_logs(state, websocket, run, query, tail)


async def _stream_logs(
    state: CoordinatorState, websocket: WebSocket, run: Run, query: Any, tail: int
) -> None:
    queue: asyncio.Queue[LogRecord | None] = asyncio.Queue()
    matching = [x for x in run.logs if query.matches(dict(x))] if query.filters else list(run.logs)
    backlog = matching[-tail:] if tail else []
    if run.status == "running":
        run.followers.add(queue)
    else:
        queue.put_nowait(None)
    try:
        for line in backlog:
            await websocket.send_json(line.model_dump())
        while (item := await queue.get()) is not None:
            if query.matches(dict(item)):
                await websocket.send_json(item.model_dump())
        await websocket.close()
    except WebSocketDisconnect:
        pass
    finally:
        run.followers.discard(queue)
