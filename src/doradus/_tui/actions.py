"""What the TUI's keys ask the coordinator to do: one `Action`, one HTTP request.

Pause, resume, restart and stop apply to one node or to a whole dataflow (a node stopped
alone ends for good: the nodes reading its outputs see them close). A node's
restart may carry new configuration: ``env`` merged over the dataflow's values,
``args`` in place of its arguments, ``data_format`` and ``schema`` for its outputs (the
coordinator checks them first, and answers 422 with the fix when it refuses them). The
routes are those of ``docs/openapi.json`` (``/dataflows/{name_or_id}/nodes/{node}/pause``
…); `perform` sends the request through the same `ControlClient` every command uses and
returns the line to show.

Example:
    >>> action = Action("pause", "demo", node="detector")
    >>> action.path, action.done()
    ('/dataflows/demo/nodes/detector/pause', "Paused node 'detector' of dataflow 'demo'.")
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from doradus._control.client import ControlClient

Verb = Literal["pause", "resume", "restart", "stop"]
GRACE_SECONDS = 5.0
"""Seconds a stopping node gets between its Stop event and being killed."""
DESTRUCTIVE: frozenset[Verb] = frozenset({"restart", "stop"})
"""Verbs asked for confirmation first: they end processes."""
_PAST = {"pause": "Paused", "resume": "Resumed", "restart": "Restarted", "stop": "Stopped"}


@dataclass(frozen=True)
class Action:
    """One request: ``verb`` on a dataflow, or on one of its nodes.

    Example:
        >>> Action("restart", "demo", node="cam", data_format="avro", schema="r.avsc").body()
        {'env': None, 'args': None, 'data_format': 'avro', 'schema': 'r.avsc', 'grace_seconds': 5.0}
    """

    verb: Verb
    dataflow: str
    """The dataflow's name or id, as the URL takes it."""
    node: str | None = None
    env: dict[str, str] | None = None
    args: str | None = None
    data_format: str | None = None
    schema: str | None = None
    """``file[:Type]``, relative to the dataflow file's folder."""
    label: str = ""
    """How the dataflow is named in messages (its name; the id when empty)."""
    grace_seconds: float = GRACE_SECONDS

    @property
    def target(self) -> str:
        """``node 'x' of dataflow 'y'`` or ``dataflow 'y'``."""
        flow = f"dataflow {(self.label or self.dataflow)!r}"
        return f"node {self.node!r} of {flow}" if self.node else flow

    @property
    def path(self) -> str:
        """The API path (under ``/api/v1``) the request goes to."""
        base = f"/dataflows/{quote(self.dataflow, safe='')}"
        if self.node:
            base += f"/nodes/{quote(self.node, safe='')}"
        return f"{base}/{self.verb}"

    def body(self) -> dict[str, Any]:
        """The request's JSON body.

        Example:
            >>> Action("stop", "demo").body()
            {'grace_seconds': 5.0, 'force': False}
        """
        if self.verb == "restart" and self.node:
            return {
                "env": self.env,
                "args": self.args,
                "data_format": self.data_format,
                "schema": self.schema,
                "grace_seconds": self.grace_seconds,
            }
        if self.verb == "restart":
            return {"grace_seconds": self.grace_seconds}
        if self.verb == "stop" and self.node:
            return {"grace_seconds": self.grace_seconds}
        if self.verb == "stop":
            return {"grace_seconds": self.grace_seconds, "force": False}
        return {}

    def question(self) -> str:
        """What the confirmation asks.

        Example:
            >>> Action("stop", "demo").question()
            "Stop dataflow 'demo'?"
        """
        changed = self.env or self.args is not None or self.data_format or self.schema
        change = " with the new configuration" if changed else ""
        return f"{self.verb.capitalize()} {self.target}{change}?"

    def done(self) -> str:
        """The line shown once the coordinator accepted it."""
        return f"{_PAST[self.verb]} {self.target}."


def as_verb(text: str) -> Verb | None:
    """``text`` as a `Verb`, or None when it is not one.

    Example:
        >>> as_verb("pause"), as_verb("columns")
        ('pause', None)
    """
    verbs: dict[str, Verb] = {"pause": "pause", "resume": "resume", "restart": "restart", "stop": "stop"}
    return verbs.get(text)


async def perform(client: ControlClient, action: Action) -> Any:
    """Send ``action`` (in a thread: the client is synchronous); the coordinator's answer.

    Raises:
        ApiError: The coordinator refused it (404 unknown, 409 not running, …).
        ServiceUnreachable: No coordinator answers.

    Example::

        await perform(client, Action("resume", "demo", node="detector"))
    """
    return await asyncio.to_thread(client.post, action.path, action.body())
