"""The run's log: every record of its nodes and of the runtime, stored, passed on and exported.

A record comes from a node's output line (`doradus._runtime.output`), from a node's
``logging`` over its control socket (`RunLog.node_record`) or from the runtime itself
(`RunLog.runtime_record`: a node started, failed, dropped messages). `RunLog.record` drops
those below their node's level, completes the rest with where they come from, and sends
each to the run's ``logs.jsonl``, to the caller's sink (the terminal, a coordinator), to the
OpenTelemetry log export when it is on, and to the nodes' log inputs
(`doradus._runtime.log_inputs`).

Example::

    log = RunLog(state, LogStore(out_dir), log_level="INFO", on_record=print, log_inputs=inputs)
    log.runtime_record("ERROR", "failed: exit status 1", "camera")
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from doradus._dataflow.model import Dataflow
from doradus._observability.records import LEVEL_RANK, at_least, make_record, normalize_level
from doradus._observability.store import LogStore
from doradus._runtime.log_inputs import LogInputs
from doradus._runtime.processes import NodeProcess
from doradus._runtime.state import RunState
from doradus._wire.node_reports import LogRecord

if TYPE_CHECKING:
    from doradus._observability.telemetry import RuntimeTelemetry

RecordSink = Callable[[dict[str, Any]], None]
"""Where a run's records go besides its store (a record is `make_record`'s dict)."""


def node_levels(flow: Dataflow, log_level: str | None) -> dict[str, str]:
    """Each node's log level: ``log_level`` when given, else its ``DORADUS_LOG_LEVEL``, else INFO.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import NodeSpec
        >>> quiet = NodeSpec(id="quiet", kind="python", env={"DORADUS_LOG_LEVEL": "warning"})
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(quiet, NodeSpec(id="chatty", kind="python")))
        >>> node_levels(flow, None), node_levels(flow, "debug")
        ({'quiet': 'WARN', 'chatty': 'INFO'}, {'quiet': 'DEBUG', 'chatty': 'DEBUG'})
    """
    level = normalize_level(log_level or "") or "INFO"
    # Without a level given, each node's comes from DORADUS_LOG_LEVEL in its dataflow env.
    return {
        spec.id: (None if log_level else normalize_level(spec.env.get("DORADUS_LOG_LEVEL", ""))) or level
        for spec in flow.nodes
    }


class RunLog:
    """The records of one run: filtered by level, completed, then stored, passed on and exported.

    Thread safety: every method may be called from any thread; the store and the sink see
    the records in one order.

    Args:
        state: the run.
        store: the run's ``logs.jsonl``.
        log_level: the run's level (None: each node's ``DORADUS_LOG_LEVEL``, else INFO).
        on_record: called with each record kept.
        log_inputs: the nodes' ``dora/logs`` inputs.
    """

    def __init__(
        self,
        state: RunState,
        store: LogStore,
        *,
        log_level: str | None,
        on_record: RecordSink | None,
        log_inputs: LogInputs,
    ) -> None:
        self._state = state
        self.store = store
        self.on_record = on_record
        self.log_level = normalize_level(log_level or "") or "INFO"
        self.levels = node_levels(state.dataflow, log_level)
        self.telemetry: RuntimeTelemetry | None = None
        """The run's OpenTelemetry export, once `open_telemetry` found it configured."""
        self._inputs = log_inputs
        self._lock = threading.Lock()

    def record(self, record: dict[str, Any]) -> None:
        """Take one record of the run: fill in where it comes from, then store, pass on and export it.

        Records below their node's log level are dropped: the run's level
        when one was given, else ``DORADUS_LOG_LEVEL`` of the node's ``env``
        in the dataflow file, else INFO. Each goes to
        ``out/<run-id>/logs.jsonl``, to ``on_record``, to the OpenTelemetry
        log export when it is on, and to the nodes whose log inputs match.
        """
        if not at_least(record, self.levels.get(record.get("node") or "", self.log_level)):
            return
        state = self._state
        record["dataflow"] = state.dataflow_name
        record["run_id"] = state.run_id
        record["machine"] = state.machine
        with self._lock:  # the store, the terminal and the coordinator see one order
            self.store.write(record)
            if self.on_record is not None:
                self.on_record(record)
        if self.telemetry is not None:
            self.telemetry.emit(record)
        if self._inputs.subscribers:
            self._inputs.deliver(record)

    def runtime_record(
        self, level: str, message: str, node_id: str | None = None, fields: dict[str, Any] | None = None
    ) -> None:
        """A record of the runtime itself (``source: runtime``), e.g. a node started or failed."""
        self.record(make_record(level, message, node=node_id, source="runtime", fields=fields))

    def node_record(self, proc: NodeProcess, record: LogRecord | None) -> None:
        """A record a node sent over its control socket (its ``logging`` or ``node.log``).

        Read as it came: a key missing or of another type takes its default; a record that
        is not a JSON object is left out.
        """
        if not isinstance(record, dict):
            return
        clean = make_record(
            str(record.get("level") or "INFO"),
            str(record.get("message", "")),
            node=proc.spec.id,
            source="log",
            trace_id=_text(record.get("trace_id")),
            span_id=_text(record.get("span_id")),
            fields=record.get("fields") if isinstance(record.get("fields"), dict) else None,
            timestamp=_text(record.get("timestamp")),
        )
        if LEVEL_RANK[clean["level"]] >= LEVEL_RANK["WARN"]:
            proc.tail.append(f"{clean['level']} {clean['message']}")
        proc.write_raw(f"[{clean['level']}] {clean['message']}")
        self.record(clean)

    def open_telemetry(self, node_metrics: Callable[[], dict[str, dict[str, Any]]]) -> None:
        """Start the run's OpenTelemetry export (a WARN record instead when its packages are missing).

        Args:
            node_metrics: what the export samples each node's CPU and memory from.
        """
        try:
            from doradus._observability.telemetry import RuntimeTelemetry
        except ImportError as exc:
            self.runtime_record(
                "WARN",
                f"OpenTelemetry export is configured but its packages are missing ({exc}): "
                "pip install 'doradus[telemetry]'",
            )
            return
        state = self._state
        telemetry = RuntimeTelemetry.create(
            dataflow=state.dataflow_name, run_id=state.run_id, machine=state.machine
        )
        if telemetry is not None:
            telemetry.observe_nodes(node_metrics)
        self.telemetry = telemetry


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
