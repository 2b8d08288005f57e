"""``doradus topic`` finding a run on this machine and asking its topic socket.

Every run's supervisor serves a topic socket (`doradus._runtime.taps.TapServer`) and names it
in ``topics.json`` in the run's private runtime folder. `local_runs` reads those of this
machine and greets each; `find_run` picks the run a command means: ``--dataflow`` (a name or
an id; a name the coordinator gave, such as ``demo-2``, is asked of it through
`coordinator_run_id`), else the one running here. `TopicSocket` sends the requests of
`doradus._runtime.topic_messages`: the data of a tap then flows from the node to this
process directly (`doradus._control.topic_taps`), never through the daemon or the coordinator.

So ``doradus topic`` runs on the machine of the node it reads; ``topic list`` shows every
output of the dataflow, those of other machines without counters.

Example::

    run = find_run(None)
    with TopicSocket(run.socket) as topics:
        facts = topics.topics()
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from doradus._paths import runs_dir
from doradus._runtime.topic_messages import (
    POINTER_FILE,
    DataflowFile,
    Hello,
    Published,
    PubRequest,
    Tapped,
    TopicError,
    TopicFacts,
)
from doradus._wire.control import recv_json, send_json

if TYPE_CHECKING:
    from doradus._control.client import ControlClient

REQUEST_TIMEOUT = 10.0
"""Seconds a request waits for its answer."""
RATE_WAIT = 2.5
"""Seconds `measure_rates` waits at most for the nodes' next reports (they come every second)."""
FIX_START = "start one (`doradus start FILE` or `doradus run FILE`) on this machine"


@dataclass(frozen=True)
class LocalRun:
    """A run of this machine with a topic socket.

    Example:
        >>> LocalRun("01a2", "demo", "m1", "/run/x/topics.sock", ("cam",)).dataflow
        'demo'
    """

    run_id: str
    dataflow: str
    machine: str
    socket: str
    nodes: tuple[str, ...]


def split_topic(topic: str) -> tuple[str, str]:
    """``NODE/OUTPUT`` as (node, output); an operator's output keeps its ``OPERATOR/`` part.

    Raises:
        TopicError: there is no ``/``.

    Example:
        >>> split_topic("camera/image"), split_topic("robot/op/pose")
        (('camera', 'image'), ('robot', 'op/pose'))
    """
    node, sep, output = topic.partition("/")
    if not sep or not node or not output:
        raise TopicError(f"{topic!r} is not NODE/OUTPUT", "write the node and its output, e.g. camera/image")
    return node, output


class TopicSocket:
    """One connection to a run's topic socket; a context manager.

    Args:
        path: the socket (from `LocalRun.socket`).
        timeout: seconds each request waits for its answer.

    Raises:
        OSError: nothing listens there (the run has ended).
    """

    def __init__(self, path: str, timeout: float = REQUEST_TIMEOUT) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError:
            self._sock.close()
            raise

    def __enter__(self) -> TopicSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (taps handed out stay open: their ends are the caller's)."""
        self._sock.close()

    def request(self, message: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        """Send one request; its answer and the descriptors attached (the caller's).

        Raises:
            TopicError: the run refused it (its cause and fix), or ended meanwhile.
        """
        try:
            send_json(self._sock, message)
            answer, fds = recv_json(self._sock)
        except (OSError, ValueError) as exc:
            raise TopicError(
                f"the run's topic socket did not answer: {exc}", "is the dataflow still running?"
            ) from exc
        if answer is None:
            raise TopicError("the run's topic socket closed", "is the dataflow still running?")
        if answer.get("op") == "error":
            for fd in fds:
                os.close(fd)
            raise TopicError(str(answer.get("message")), answer.get("fix"))
        return answer, fds

    def hello(self) -> Hello:
        """Which run this is (`doradus._runtime.topic_messages.Hello`)."""
        answer, _fds = self.request({"op": "hello"})
        return cast("Hello", answer)

    def topics(self) -> list[TopicFacts]:
        """Every output of the run's dataflow."""
        answer, _fds = self.request({"op": "topics"})
        return list(answer.get("topics") or [])

    def dataflow(self) -> DataflowFile:
        """The dataflow file the run was started with (`doradus._runtime.topic_messages.DataflowFile`)."""
        answer, _fds = self.request({"op": "dataflow"})
        return cast("DataflowFile", answer)

    def tap(self, node: str, output: str, mode: str) -> tuple[Tapped, int]:
        """Open a tap (``full`` or ``headers``); its answer and its reading end's descriptor.

        Raises:
            TopicError: the run refused it (no such output, not here, not running...).
        """
        answer, fds = self.request({"op": "tap", "node": node, "output": output, "mode": mode})
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise TopicError("the run's answer carried no tap", "use the same Doradus version as the run")
        return cast("Tapped", answer), fds[0]

    def pub(self, request: PubRequest) -> Published:
        """Send one message to an output's receivers as if its node had sent it."""
        answer, _fds = self.request(dict(request))
        return cast("Published", answer)


def local_runs() -> list[LocalRun]:
    """The runs of this machine that answer on their topic socket, oldest folder first.

    Example::

        [run.dataflow for run in local_runs()]   # ['demo']
    """
    found = []
    for pointer in sorted(runs_dir().glob(f"*/{POINTER_FILE}")):
        try:
            path = str(json.loads(pointer.read_text())["socket"])
            with TopicSocket(path, timeout=2.0) as conn:
                hello = conn.hello()
        except (OSError, ValueError, KeyError, TypeError, TopicError):
            continue  # a run ending, or one whose supervisor was killed
        found.append(
            LocalRun(hello["run_id"], hello["dataflow"], hello["machine"], path, tuple(hello["nodes"]))
        )
    return found


def find_run(name: str | None, client: ControlClient | None = None) -> LocalRun:
    """The run a topic command means: ``name`` (a dataflow name or run id), else the one here.

    A name no run here answers to is asked of the coordinator (``client``), which knows the
    names it gave (``demo-2``) and on which machines a run is.

    Raises:
        TopicError: no such run here, or several and no ``name``.

    Example::

        find_run("demo").run_id   # '01a2418d-...'
    """
    runs = local_runs()
    if not name:
        if len(runs) == 1:
            return runs[0]
        if not runs:
            raise TopicError("no dataflow runs on this machine", FIX_START)
        listed = ", ".join(f"{r.dataflow} ({r.run_id[:8]})" for r in runs)
        raise TopicError(
            f"{len(runs)} dataflows run on this machine: {listed}", "name one with --dataflow NAME"
        )
    matches = [
        r for r in runs if name in (r.run_id, r.dataflow) or (len(name) >= 8 and r.run_id.startswith(name))
    ]
    if len(matches) != 1 and client is not None:
        run_id = coordinator_run_id(client, name)
        matches = [r for r in runs if r.run_id == run_id] if run_id else matches
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise TopicError(
            f"{len(matches)} dataflows here are named {name!r}", "name one by its id (`doradus list`)"
        )
    raise TopicError(
        f"no dataflow {name!r} runs on this machine",
        "see `doradus list`; topic commands run on the node's machine",
    )


def coordinator_run_id(client: ControlClient, name: str) -> str | None:
    """The id of the running dataflow the coordinator calls ``name``; None if none (or no coordinator).

    Example::

        coordinator_run_id(client, "demo-2")   # '01a2418d-...'
    """
    from doradus._control.client import ApiError, ServiceUnreachable

    try:
        found = client.get(f"/dataflows/{name}")
    except (ApiError, ServiceUnreachable):
        return None
    return str(found["id"]) if isinstance(found, dict) and "id" in found else None


def measure_rates(conn: TopicSocket, max_wait: float = RATE_WAIT) -> list[dict[str, Any]]:
    """Every output, with ``rate`` (messages/s) and ``bytes_per_s`` between its node's last two reports.

    Nodes report their counters every second: the counters are read once, then again once each
    node here that sends has reported anew (at most ``max_wait`` seconds later). None where
    nothing was measured (a node elsewhere, or not reporting).

    Example::

        [t["rate"] for t in measure_rates(conn)]   # [50.0, None]
    """
    first = {t["topic"]: t for t in conn.topics()}
    stamps = {
        name: t["counters"]["at"] for name, t in first.items() if t["counters"] and t["state"] == "running"
    }
    deadline = time.monotonic() + max_wait
    second = list(first.values())
    while stamps and time.monotonic() < deadline:
        time.sleep(0.2)
        second = conn.topics()
        if all(
            t["counters"] is None or t["counters"]["at"] != stamps.get(t["topic"])
            for t in second
            if t["topic"] in stamps
        ):
            break
    measured: list[dict[str, Any]] = []
    for t in second:
        entry: dict[str, Any] = {**t, "rate": None, "bytes_per_s": None}
        before, after = first[t["topic"]]["counters"], t["counters"]
        if before and after and after["at"] > before["at"]:
            span = after["at"] - before["at"]
            entry["rate"] = round(max(0, after["sent"] - before["sent"]) / span, 2)
            entry["bytes_per_s"] = round(max(0, after["bytes"] - before["bytes"]) / span, 1)
        measured.append(entry)
    return measured
