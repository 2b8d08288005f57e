"""``doradus record --attach [NAME]``: record a dataflow that already runs on this machine.

The command finds the run (`find_attached`: NAME, a dataflow name or id, else the only one
running here; a name the coordinator gave is asked of it), then
`doradus._recording.attach.record_attached` taps its outputs and writes the file until Ctrl-C,
SIGTERM, ``--duration`` or the dataflow's end.

Example::

    $ doradus up && doradus start dataflow.yml --detach --name demo
    $ doradus record --attach demo -o run.mcap --duration 30s
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from doradus.cli._options import make_client
from doradus.cli._render import Reporter

if TYPE_CHECKING:
    from doradus._control.client import ControlClient
    from doradus._control.topics import LocalRun
    from doradus._recording.attach import AttachOutcome, AttachSettings

FIX_START = "start one under a coordinator: `doradus up`, then `doradus start FILE --detach`"


@dataclass(frozen=True)
class AttachRequest:
    """What ``record --attach`` was asked: the run (None: the only one here) and the file's settings.

    Example:
        >>> from pathlib import Path
        >>> from doradus._recording.attach import AttachSettings
        >>> AttachRequest("demo", AttachSettings(Path("run.mcap")), {"coordinator": None}).name
        'demo'
    """

    name: str | None
    settings: AttachSettings
    connection: dict[str, Any]
    """``coordinator`` and ``token_file``, as the other commands take them."""


def record_attach(request: AttachRequest, reporter: Reporter) -> int:
    """Record the run ``request`` names until Ctrl-C, SIGTERM, its duration or the run's end; exit code.

    Example::

        sys.exit(record_attach(AttachRequest(None, settings, opts), Reporter()))
    """
    from doradus._control.topics import TopicSocket
    from doradus._recording.attach import record_attached
    from doradus._recording.errors import RecordingError
    from doradus._runtime.topic_messages import TopicError

    stop = threading.Event()
    try:
        run = find_attached(
            request.name, make_client({**request.connection, "retries": 0, "retry_interval": 0.0})
        )
        reporter.info(
            f"Recording dataflow {run.dataflow!r} (run {run.run_id}) to {request.settings.output}: "
            + (
                "Ctrl-C stops"
                if request.settings.duration is None
                else f"for {request.settings.duration:g} s"
            )
        )
        with _stopped_by_signals(stop):
            outcome = record_attached(lambda: TopicSocket(run.socket), request.settings, stop, reporter.info)
    except TopicError as exc:
        reporter.error(str(exc))
        if exc.fix:
            reporter.info(f"Suggested fix: {exc.fix}")
        return 2
    except RecordingError as exc:
        reporter.error(str(exc))
        return 2
    _report(outcome, reporter)
    return 0


def find_attached(name: str | None, client: ControlClient) -> LocalRun:
    """The run of this machine ``name`` means (a dataflow name or run id), else the only one here.

    A name no run here answers to is asked of the coordinator, which knows the names it gave
    (``demo-2``), whether the dataflow still runs and on which machines.

    Raises:
        TopicError: no such dataflow, it does not run (here), no coordinator to ask, or
            several run here and no ``name`` says which (each with its fix).

    Example::

        find_attached("demo", client).run_id   # '01a2418d-...'
    """
    from doradus._control.topics import local_runs
    from doradus._runtime.topic_messages import TopicError

    listed = _ask(client, "/dataflows")
    names = {d["id"]: d["name"] for d in listed} if isinstance(listed, list) else {}
    found = local_runs()
    runs = [dataclasses.replace(r, dataflow=names.get(r.run_id, r.dataflow)) for r in found]
    if not name:
        if len(runs) == 1:
            return runs[0]
        if runs:
            shown = ", ".join(f"{r.dataflow} ({r.run_id})" for r in runs)
            raise TopicError(
                f"{len(runs)} dataflows run on this machine: {shown}",
                "name one: `doradus record --attach NAME -o FILE` (a name or id from `doradus list`)",
            )
        unreachable = f", and no coordinator answers at {client.address}" if isinstance(listed, str) else ""
        raise TopicError(f"no dataflow runs on this machine{unreachable}", FIX_START)
    matches = [
        r
        for r, own in zip(runs, found, strict=True)
        if name in (r.run_id, r.dataflow, own.dataflow) or (len(name) >= 8 and r.run_id.startswith(name))
    ]
    if len(matches) == 1:
        return matches[0]
    return _asked(name, runs, matches, client)


def _asked(name: str, runs: list[LocalRun], matches: list[LocalRun], client: ControlClient) -> LocalRun:
    """The run ``name`` means by the coordinator's word, or why there is none."""
    from doradus._runtime.topic_messages import TopicError

    found = _ask(client, f"/dataflows/{name}")
    if isinstance(found, dict):
        same = [r for r in runs if r.run_id == found.get("id")]
        if same:
            return same[0]
        if found.get("status") != "running":
            raise TopicError(
                f"dataflow {name!r} is {found.get('status')}, not running", "start it again, then record"
            )
        machines = ", ".join(found.get("machines") or [str(found.get("machine"))])
        raise TopicError(
            f"dataflow {name!r} runs on {machines}, not on this machine",
            "run `doradus record --attach` on the machine of its nodes (taps read nodes of their machine)",
        )
    if matches:
        raise TopicError(
            f"{len(matches)} dataflows here are named {name!r}", "name one by its id (`doradus list`)"
        )
    here = ", ".join(sorted({r.dataflow for r in runs})) or "none"
    if isinstance(found, str):
        raise TopicError(
            f"no dataflow {name!r} runs on this machine (running here: {here}), "
            f"and no coordinator answers at {client.address} ({found})",
            FIX_START,
        )
    raise TopicError(f"no dataflow {name!r} (running here: {here})", "see `doradus list` for names and ids")


def _ask(client: ControlClient, path: str) -> Any:
    """The coordinator's answer; None if it refused (404...), the reason if it does not answer."""
    from doradus._control.client import ApiError, ServiceUnreachable

    try:
        return client.get(path)
    except ServiceUnreachable as exc:
        return str(exc)
    except ApiError:
        return None


@contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (the file is then finished) while inside; restored after."""
    before = {sig: signal.signal(sig, lambda _s, _f: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _report(outcome: AttachOutcome, reporter: Reporter) -> None:
    """Why it ended, what was not recorded, what was dropped, what the file holds."""
    from doradus.cli._recording import _recorded

    why = {
        "stopped": "stopped",
        "duration": "its duration passed",
        "dataflow ended": "the dataflow ended",
        "nodes ended": "every recorded node ended",
    }
    reporter.info(f"Recording ended: {why.get(outcome.ended, outcome.ended)}")
    for topic, reason in outcome.skipped.items():
        reporter.warning(f"{topic} not recorded: {reason}")
    for line in outcome.errors[:3]:
        reporter.warning(line)
    for topic, count in outcome.dropped.items():
        if count:
            reporter.warning(
                f"{topic}: {count} message(s) dropped: the recorder fell behind "
                "(see `doradus recording info`, column DROPPED)"
            )
    if outcome.retapped:
        reporter.info(f"outputs tapped again after a node restarted: {outcome.retapped}")
    _recorded(outcome.path, reporter)
    sys.stdout.flush()
