"""``dora/logs`` inputs: the run's log records delivered to the nodes that read them.

A node may read the run's records as an input (``inputs: {logs: dora/logs/warn}``, or one
node's with ``dora/logs/<node>``). Each record at or above the input's level goes to it as a
``log_input`` message, except the node's own. Records made before the dataflow starts (nodes
starting, their first lines) are kept, `EARLY_LOG_RECORDS` at most, and delivered once it
has. When every node that could write to an input has ended, the input gets
``logs_closed``.

Example::

    inputs = LogInputs(state)
    inputs.deliver(make_record("WARN", "slow", node="camera"))
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, NamedTuple, cast

from doradus._dataflow.model import LogSource
from doradus._observability.records import at_least, normalize_level
from doradus._runtime.state import RunState
from doradus._wire.control import LogInputMessage, LogsClosedMessage, send_control
from doradus._wire.node_reports import RunLogRecord

EARLY_LOG_RECORDS = 1_000
"""Records kept for log inputs until the dataflow starts."""


class Subscriber(NamedTuple):
    """One ``dora/logs`` input of a node here: the least level it reads, and whose records.

    Example:
        >>> Subscriber("monitor", "warnings", "WARN", None).level
        'WARN'
    """

    node: str
    input: str
    level: str
    only: str | None
    """The one node whose records it reads (``dora/logs/<node>``), None for every node."""


class LogInputs:
    """The log inputs of one run's nodes here: which records each gets, and when they close.

    Thread safety: `deliver` may be called from any thread; `close_finished` and
    `dataflow_started` with the run's lock held.
    """

    def __init__(self, state: RunState) -> None:
        self._state = state
        self.subscribers = [
            Subscriber(spec.id, input_id, normalize_level(inp.source.level or "") or "TRACE", inp.source.node)
            for spec in state.dataflow.nodes
            for input_id, inp in spec.inputs.items()
            if isinstance(inp.source, LogSource) and spec.id in state.nodes
        ]
        self._early: deque[dict[str, Any]] = deque(maxlen=EARLY_LOG_RECORDS)
        self._closed: set[tuple[str, str]] = set()
        """(node, input) of the log inputs closed: two nodes may name their log inputs alike."""

    def deliver(self, record: dict[str, Any]) -> None:
        """Send ``record`` to every log input that reads it (kept until the dataflow has started)."""
        state = self._state
        with state.lock:
            if not state.started:
                self._early.append(record)
                return
            targets = [
                (state.nodes[s.node].conn, s.input)
                for s in self.subscribers
                if s.node != record.get("node")
                and (s.node, s.input) not in self._closed
                and (s.only is None or s.only == record.get("node"))
                and at_least(record, s.level)
                and state.nodes[s.node].conn is not None
            ]
        sent = cast("RunLogRecord", record)  # a record of the run has every key (`make_record`)
        for conn, input_id in targets:
            message: LogInputMessage = {"op": "log_input", "input": input_id, "record": sent}
            try:
                assert conn is not None
                send_control(conn, message)
            except (OSError, ValueError):
                pass

    def close_finished(self) -> None:
        """Log inputs whose every possible writer has ended get closed (caller holds the lock)."""
        state = self._state
        if not state.started:
            return
        for node_id, input_id, _level, only in self.subscribers:
            if (node_id, input_id) in self._closed:
                continue
            proc = state.nodes[node_id]
            writers = [
                p for nid, p in state.nodes.items() if nid != node_id and (only is None or nid == only)
            ]
            if all(p.exited and not p.restarting for p in writers) and proc.conn is not None:
                self._closed.add((node_id, input_id))
                closed: LogsClosedMessage = {"op": "logs_closed", "inputs": [input_id]}
                try:
                    send_control(proc.conn, closed)
                except OSError:
                    pass

    def dataflow_started(self) -> None:
        """The dataflow has started: deliver the records kept until now, close inputs already done.

        The caller holds the lock; the kept records go out from a thread of their own.
        """
        early = list(self._early)
        self._early.clear()
        if early:
            threading.Thread(target=self._deliver_all, args=(early,), daemon=True).start()
        self.close_finished()

    def _deliver_all(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.deliver(record)
