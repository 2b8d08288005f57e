"""A node's parameters while its dataflow runs: ``doradus param list|get|set|delete NODE [KEY] [VALUE]``.

Values are JSON, as with dora-rs (``0.02``, ``true``, ``'{"x": 1}'``, and text in JSON quotes:
``'"high-res"'``); a value that is not JSON is refused with that fix. Each command calls
`doradus._control.param_commands` through a `ControlClient` (``--output json|yaml``: the API's
answer on stdout). ``--dataflow`` names the dataflow; without it, the one running dataflow.
Parameters are kept by the coordinator: a dataflow ``doradus run`` runs alone takes none.
See docs/cli.md and docs/node-api.md (the node's side).

Example::

    $ doradus param set camera exposure 0.02
    ✓ Set 'exposure' = 0.02 on node 'camera' of dataflow 'demo'.
    $ doradus param get camera exposure
    0.02
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from doradus._control import param_commands as api
from doradus._control.client import ServiceUnreachable
from doradus._control.node_commands import running_dataflow
from doradus._control.node_models import check_key
from doradus.cli._options import CONTEXT, connection_options, failures, make_client, output_option
from doradus.cli._render import Reporter, emit_data

F = TypeVar("F", bound=Callable[..., Any])


def parse_value(text: str) -> Any:
    """A parameter value as written on the command line: JSON (no NaN or Infinity).

    Raises:
        click.BadParameter: ``text`` is not JSON; the message shows it quoted as a JSON string.

    Example:
        >>> parse_value("0.02"), parse_value('{"x": 1}'), parse_value('"high-res"')
        (0.02, {'x': 1}, 'high-res')
        >>> parse_value("high-res")
        Traceback (most recent call last):
        ...
        click.exceptions.BadParameter: 'high-res' is not a JSON value ...
    """

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        value = json.loads(text, parse_constant=refuse)
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        quoted = json.dumps(text)
        raise click.BadParameter(
            f"{text!r} is not a JSON value ({reason}): write text as a JSON string, quoted for the "
            f"shell too: '{quoted}'",
            param_hint="VALUE",
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise click.BadParameter(f"{text!r} is too large for a JSON number", param_hint="VALUE")
    return value


def _key(key: str) -> str:
    """``key``, or a usage error saying why it cannot name a parameter."""
    problem = check_key(key)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="KEY")
    return key


def _param_options(func: F) -> F:
    """NODE, ``--dataflow``, ``--output`` and the connection options of every param command."""
    func = connection_options(func)
    func = output_option(func)
    return click.option(
        "--dataflow",
        "-d",
        metavar="NAME",
        help="The dataflow (name or id); needed only when several run.",
    )(func)


@contextmanager
def _needs_coordinator() -> Iterator[None]:
    """No coordinator answering: say that parameters need one (a ``doradus run`` alone has none)."""
    try:
        yield
    except ServiceUnreachable as exc:
        raise ServiceUnreachable(str(exc), api.NEEDS_COORDINATOR, retries=exc.retries) from exc


@click.group(context_settings=CONTEXT)
def param() -> None:
    """A node's parameters (JSON values): list, get, set and delete them while its dataflow runs.

    The node gets each change as an event (ParamUpdate, ParamDeleted; dora nodes PARAM_UPDATE,
    PARAM_DELETED) and reads its current ones with `node.parameters()`; a restarted node starts
    with them.
    """


@param.command("list", context_settings=CONTEXT)
@click.argument("node_id", metavar="NODE")
@_param_options
def list_(node_id: str, dataflow: str | None, output: str, **opts: Any) -> None:
    """Every parameter of NODE (key = JSON value)."""
    reporter = Reporter(color=False if opts["no_color"] else None)
    client = make_client(opts)
    with failures(reporter), _needs_coordinator():
        found = api.list_params(client, running_dataflow(client, dataflow), node_id)
    if output != "table":
        emit_data(found, output)
        return
    params = found["params"]
    if not params:
        reporter.info(f"Node {node_id!r} of dataflow {found['dataflow']!r} has no parameters.")
        return
    for key, value in sorted(params.items()):
        click.echo(f"{key} = {json.dumps(value)}")


@param.command(context_settings=CONTEXT)
@click.argument("node_id", metavar="NODE")
@click.argument("key")
@_param_options
def get(node_id: str, key: str, dataflow: str | None, output: str, **opts: Any) -> None:
    """The value of NODE's parameter KEY, as JSON on stdout."""
    reporter = Reporter(color=False if opts["no_color"] else None)
    client = make_client(opts)
    with failures(reporter), _needs_coordinator():
        found = api.get_param(client, running_dataflow(client, dataflow), node_id, _key(key))
    if output != "table":
        emit_data(found, output)
        return
    click.echo(json.dumps(found["value"]))


@param.command("set", context_settings=CONTEXT)
@click.argument("node_id", metavar="NODE")
@click.argument("key")
@click.argument("value")
@_param_options
def set_(node_id: str, key: str, value: str, dataflow: str | None, output: str, **opts: Any) -> None:
    """Set NODE's parameter KEY to VALUE, a JSON value: 0.02, true, '"text"', '{"x": 1}'.

    The node gets a ParamUpdate event (even when the value is the same as before).
    """
    _key(key)
    parsed = parse_value(value)
    reporter = Reporter(color=False if opts["no_color"] else None)
    client = make_client(opts)
    with failures(reporter), _needs_coordinator():
        done = api.set_param(client, running_dataflow(client, dataflow), node_id, key, parsed)
    _said(reporter, done, output)


@param.command(context_settings=CONTEXT)
@click.argument("node_id", metavar="NODE")
@click.argument("key")
@_param_options
def delete(node_id: str, key: str, dataflow: str | None, output: str, **opts: Any) -> None:
    """Delete NODE's parameter KEY (the node gets a ParamDeleted event)."""
    reporter = Reporter(color=False if opts["no_color"] else None)
    client = make_client(opts)
    with failures(reporter), _needs_coordinator():
        done = api.delete_param(client, running_dataflow(client, dataflow), node_id, _key(key))
    _said(reporter, done, output)


def _said(reporter: Reporter, done: dict[str, Any], output: str) -> None:
    if output != "table":
        emit_data(done, output)
    elif done["forwarded"]:
        reporter.success(str(done["message"]))
    else:
        reporter.warning(str(done["message"]))


ALL_COMMANDS = {"param": param}
"""Command name → command, for ``cli/_main.py`` to register."""
