"""Starting dataflows: reading where nodes go, asking daemons, waiting for their replies.

A start request carries the dataflow's text; the coordinator reads from it only
what `place_nodes` needs (``deploy``), in a worker thread, `PARSING_AT_ONCE` at a
time, and never opens a file. One machine: one ``spawn``. Several: a ``prepare``
round (where each machine's nodes listen), then a ``spawn`` round.

Example::

    starter = Starter(state)
    summary = await starter.start(StartRequest(path="/srv/flow.yml", text=text))
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import PurePosixPath
from typing import Any

from doradus._control.daemon_link import Prepared, Reply, Spawned, SpawnFailed
from doradus._control.models import DataflowSummary, NodeStatus, StartRequest
from doradus._control.state import CoordinatorState, Daemon, Run, fail, send_quietly
from doradus._ids import new_run_id

SPAWN_TIMEOUT = 30.0
"""Seconds a daemon has to answer a ``prepare`` or ``spawn``."""
PARSING_AT_ONCE = 2
"""Dataflow texts read for placement at the same time (each may take a second and 100 MiB)."""
NO_TEXT = (
    "send the dataflow's text in `text`: the coordinator does not open files a client names",
    "upgrade the client (`doradus start` sends the file's text and its path)",
)


class Starter:
    """Starting dataflows: placing nodes, asking daemons, waiting for their replies."""

    def __init__(self, state: CoordinatorState) -> None:
        self.state = state
        self.parsing = asyncio.Semaphore(PARSING_AT_ONCE)

    async def start(self, request: StartRequest) -> DataflowSummary:
        """Start ``request``'s dataflow on the daemons its ``deploy`` names (or the first one)."""
        state = self.state
        text = _text_of(request)
        if not state.daemons:
            raise fail(503, "no daemon is connected", "start one with `doradus up` or `doradus daemon`")
        if request.name and any(
            d.name == request.name and d.status == "running" for d in state.dataflows.values()
        ):
            raise fail(
                409,
                f"a dataflow named {request.name!r} is already running",
                "stop it first, or choose another --name",
            )
        async with self.parsing:  # off the event loop: a large text takes a while to read
            placement = await asyncio.to_thread(place_nodes, text, request.path, next(iter(state.daemons)))
        machines = sorted(set(placement.values())) or list(state.daemons)[:1]
        if not machines:
            raise fail(503, "no daemon is connected", "start one with `doradus up` or `doradus daemon`")
        missing = [m for m in machines if m not in state.daemons]
        if missing:
            raise fail(
                503,
                f"machine(s) {', '.join(missing)} named by `deploy` have no connected daemon",
                f"start `doradus daemon --machine-id {missing[0]} -c <coordinator>` on it",
            )
        if len(machines) > 1:
            return await self._start_across(request, text, placement, machines)
        run_id = new_run_id()
        spawn = {"type": "spawn", "id": run_id, "path": request.path, "text": text, "env": request.env}
        reply = await self._ask(
            state.daemons[machines[0]], run_id, request, {**spawn, "log_level": request.log_level}
        )
        if not isinstance(reply, Spawned):
            raise fail(422, _error_of(reply), reply.fix if isinstance(reply, SpawnFailed) else None)
        return state.dataflows[run_id].summary()

    async def _ask(
        self, daemon: Daemon, run_id: str, request: StartRequest | None, message: dict[str, Any]
    ) -> Reply:
        """Send ``message`` to ``daemon`` and wait for its reply about ``run_id``."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        daemon.pending[run_id] = (future, request)
        await send_quietly(daemon, message)
        try:
            return await asyncio.wait_for(future, SPAWN_TIMEOUT)
        except TimeoutError as exc:
            raise fail(503, f"daemon {daemon.machine_id!r} did not answer in {SPAWN_TIMEOUT:g}s") from exc
        finally:
            daemon.pending.pop(run_id, None)

    async def _start_across(
        self, request: StartRequest, text: str, placement: dict[str, str], machines: list[str]
    ) -> DataflowSummary:
        """Start a dataflow whose nodes are placed on several machines.

        Two rounds: each daemon *prepares* (announces where its nodes listen for links from
        other machines, and its Zenoh router's endpoint), then each *spawns* its nodes with
        every daemon's announcements.
        """
        state = self.state
        run_id = new_run_id()
        base: dict[str, Any] = {"id": run_id, "path": request.path, "text": text, "env": request.env}
        base.update(placement=placement, log_level=request.log_level)
        prepared = await asyncio.gather(
            *(self._ask(state.daemons[m], run_id, None, {"type": "prepare", **base}) for m in machines)
        )
        failed = next((p for p in prepared if not isinstance(p, Prepared)), None)
        if failed is not None:
            raise fail(422, _error_of(failed), failed.fix if isinstance(failed, SpawnFailed) else None)
        listen: dict[str, str] = {}
        routers: dict[str, str] = {}
        for machine, reply in zip(machines, prepared, strict=True):
            assert isinstance(reply, Prepared)
            listen.update(reply.listen)
            if reply.router:
                routers[machine] = reply.router
        # One secret per run: a node proves it belongs to the run when it connects to a peer.
        remote = {"listen": listen, "routers": routers, "link_key": secrets.token_hex(16)}
        spawned = await asyncio.gather(
            *(
                self._ask(state.daemons[m], run_id, None, {"type": "spawn", **base, "remote": remote})
                for m in machines
            ),
            return_exceptions=True,
        )
        replies = [r for r in spawned if isinstance(r, Spawned)]
        if len(replies) != len(machines):
            for machine in machines:
                if machine in state.daemons:
                    await send_quietly(
                        state.daemons[machine], {"type": "stop", "id": run_id, "grace_seconds": 1.0}
                    )
            first = next(r for r in spawned if not isinstance(r, Spawned))
            raise fail(422, _error_of(first))
        run = Run(
            id=run_id,
            name=request.name or state.unique_name(replies[0].name or PurePosixPath(request.path).stem),
            path=request.path,
            machine=machines[0],
            text=text,
            env=dict(request.env),
            log_level=request.log_level,
            machines=list(machines),
            placement=dict(placement),
            parts_running=set(machines),
            nodes={n: NodeStatus() for n in placement},
        )
        state.dataflows[run_id] = run
        for machine, reply in zip(machines, replies, strict=True):
            for early in reply.early:
                state.handle(state.daemons[machine], early)
        return run.summary()


def _text_of(request: StartRequest) -> str:
    """The dataflow text of a start request; 422 without one, or without an absolute path."""
    if request.text is None:
        raise fail(422, *NO_TEXT)
    if not PurePosixPath(request.path).is_absolute() or "\x00" in request.path:
        raise fail(
            422, "`path` must be the dataflow file's absolute path", "send the resolved path of the file"
        )
    return request.text


def _error_of(reply: Reply | BaseException) -> str:
    if isinstance(reply, SpawnFailed):
        return reply.error
    if isinstance(reply, BaseException):
        return str(getattr(reply, "detail", None) or reply)
    return f"unexpected reply {reply.type!r} from a daemon"


def place_nodes(text: str, path: str, default: str) -> dict[str, str]:
    r"""Node id → machine from the dataflow's ``deploy: {machine}`` (``{}`` when nothing is placed).

    Nodes without a machine go with ``default``. Only the text is read: a
    dataflow the coordinator cannot read goes whole to one daemon, which says
    what is wrong with it.

    Example:
        >>> text = "nodes:\n  - id: cam\n    deploy: {machine: robot}\n  - id: plan\n"
        >>> place_nodes(text, "/srv/flow.yml", "gpu")
        {'cam': 'robot', 'plan': 'gpu'}
    """
    from doradus._dataflow.loader import node_machines

    machines = node_machines(text, path)
    if not machines or not any(machines.values()):
        return {}
    return {node: machine or default for node, machine in machines.items()}
