"""The coordinator's state on disk: one SQLite database per coordinator, written off the event loop.

``doradus coordinator`` keeps what a restart must not lose in
``<runtime folder>/coordinator-<port>.db`` (`database_path`; mode 0600, WAL journal): each
dataflow it knows (name, id, path, text, env, status, machines, placement...), each node's
state, pid, exit code and restart count (written when one of them changes: metrics are not
kept), each node's parameters (``doradus param``), the daemons it has seen, and the last
`LOG_BACKLOG` log records of each dataflow (what ``logs`` serves). `StateStore.open` reads it
back as a `Snapshot`; ``destroy`` removes it (`remove_database`).

Writes never wait on the disk: `CoordinatorState` hands each change to `StateStore`, which
queues it, and one writer thread commits what came in each `FLUSH_EVERY` seconds in one
transaction (``synchronous=NORMAL``: no fsync per commit in WAL mode). A coordinator killed
outright loses at most the changes of the last fraction of a second; a disk error is logged
once and the coordinator goes on in memory. A database this version cannot read (corrupt, or
of another schema) is moved aside as ``*.db.unreadable`` and the coordinator starts empty.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "coordinator.db"
    >>> store, snapshot = StateStore.open(path)
    >>> snapshot.runs, oct(path.stat().st_mode & 0o777)
    ([], '0o600')
    >>> store.close()
    >>> remove_database(path); path.exists()
    False
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doradus._control.models import DaemonInfo, LogRecord, NodeAction, NodeStatus
from doradus._control.state import LOG_BACKLOG, Run
from doradus._paths import runtime_base

SCHEMA_VERSION = 1
FLUSH_EVERY = 0.2
"""Seconds of changes one transaction gathers."""
TRIM_EVERY = 1_000
"""Log records a dataflow gets between two trims back to `LOG_BACKLOG`."""
DURABLE_NODE_FIELDS = ("state", "pid", "exit_code", "restarts")
"""The node fields kept on disk; a change to one of them is written, metrics are not."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (run_id TEXT, node TEXT, body TEXT NOT NULL, PRIMARY KEY (run_id, node));
CREATE TABLE IF NOT EXISTS logs (seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS logs_by_run ON logs (run_id, seq);
CREATE TABLE IF NOT EXISTS daemons (machine_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS params (run_id TEXT, node TEXT, body TEXT NOT NULL, PRIMARY KEY (run_id, node));
"""
_log = logging.getLogger("doradus.coordinator")


def database_path(port: int) -> Path:
    """Where the coordinator listening on ``port`` keeps its state (in the per-user runtime folder).

    Example:
        >>> database_path(6300).name
        'coordinator-6300.db'
    """
    return runtime_base() / f"coordinator-{port}.db"


def remove_database(path: Path) -> None:
    """Remove the database at ``path`` with its journal files (nothing there is fine).

    Example:
        >>> remove_database(Path("/nonexistent/coordinator.db"))
    """
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass(frozen=True)
class Snapshot:
    """What a database held: the dataflows (oldest first, with nodes and logs) and the daemons seen.

    Example::

        snapshot.runs[0].name, list(snapshot.daemons)   # ('demo', ['vm'])
    """

    runs: list[Run] = field(default_factory=list)
    daemons: dict[str, DaemonInfo] = field(default_factory=dict)


def run_record(run: Run) -> dict[str, Any]:
    """``run``'s own fields as saved (its nodes and logs are saved apart).

    Example:
        >>> run_record(Run(id="r1", name="demo", path="/srv/flow.yml", machine="vm"))["status"]
        'running'
    """
    return {
        "id": run.id,
        "name": run.name,
        "path": run.path,
        "machine": run.machine,
        "text": run.text,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "stop_requested": run.stop_requested,
        "reason": run.reason,
        "external": run.external,
        "env": dict(run.env),
        "log_level": run.log_level,
        "machines": list(run.machines),
        "placement": dict(run.placement),
        "parts_running": sorted(run.parts_running | run.awaiting),  # a part still awaited still runs
        "failed_parts": sorted(run.failed_parts),
        "actions": [action.model_dump(by_alias=True) for action in run.actions],
        "node_ids": list(run.nodes),
    }


def run_from_record(body: dict[str, Any]) -> Run:
    """The `Run` a `run_record` describes (nodes pending and no logs until they are added).

    Example:
        >>> run_from_record(run_record(Run(id="r1", name="demo", path="/f.yml", machine="vm"))).name
        'demo'
    """
    run = Run(
        id=str(body["id"]),
        name=str(body["name"]),
        path=str(body["path"]),
        machine=str(body["machine"]),
        text=body.get("text"),
        status=body.get("status", "running"),
        started_at=float(body.get("started_at") or time.time()),
        finished_at=body.get("finished_at"),
        stop_requested=bool(body.get("stop_requested")),
        reason=body.get("reason"),
        external=bool(body.get("external")),
        env={str(k): str(v) for k, v in dict(body.get("env") or {}).items()},
        log_level=body.get("log_level"),
        machines=[str(m) for m in body.get("machines") or []],
        placement={str(k): str(v) for k, v in dict(body.get("placement") or {}).items()},
        parts_running={str(m) for m in body.get("parts_running") or []},
        failed_parts={str(m) for m in body.get("failed_parts") or []},
        nodes={str(n): NodeStatus() for n in body.get("node_ids") or []},
    )
    run.actions.extend(NodeAction.model_validate(action) for action in body.get("actions") or [])
    if run.status != "running":
        run.ended.set()
    return run


@dataclass(frozen=True)
class _SaveRun:
    id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class _SaveNode:
    run_id: str
    node: str
    body: dict[str, Any]


@dataclass(frozen=True)
class _SaveParams:
    run_id: str
    node: str
    body: dict[str, Any]


@dataclass(frozen=True)
class _AddLog:
    run_id: str
    record: LogRecord


@dataclass(frozen=True)
class _Forget:
    run_id: str


@dataclass(frozen=True)
class _SaveDaemon:
    info: DaemonInfo


_Op = _SaveRun | _SaveNode | _SaveParams | _AddLog | _Forget | _SaveDaemon | threading.Event | None
"""A change to write; an `Event` asks for a flush (set once written); None ends the writer."""


class StateStore:
    """Saves the coordinator's changes to its SQLite database from one writer thread.

    Every method but `open`, `flush` and `close` only queues the change and returns at once:
    call them from the event loop. Changes are written in the order given.

    Example::

        store, snapshot = StateStore.open(database_path(6300))
        store.save_run(run)
        store.close()   # writes what is queued, then stops the writer
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._nodes: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._failed = False
        self._thread = threading.Thread(target=self._write_loop, name="coordinator-state", daemon=True)

    @classmethod
    def open(cls, path: Path) -> tuple[StateStore, Snapshot]:
        """Open (or create, mode 0600) the database at ``path``; the store and what it held.

        Raises:
            sqlite3.OperationalError: The database cannot be opened or read now (locked,
                no permission, I/O error); a corrupt one is moved aside instead.

        Example::

            store, snapshot = StateStore.open(database_path(6300))
        """
        try:
            snapshot = _load(path)
        except sqlite3.OperationalError:
            raise  # locked, unreadable, a full disk: not the file's fault, so it is left as it is
        except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as exc:
            aside = path.with_name(path.name + ".unreadable")
            _log.warning("cannot read the saved state %s (%s): moved to %s, starting empty", path, exc, aside)
            remove_database(aside)
            os.replace(path, aside)
            remove_database(path)
            snapshot = _load(path)
        store = cls(path)
        for run in snapshot.runs:
            for node_id, node in run.nodes.items():
                store._nodes[(run.id, node_id)] = _durable(node)
        store._thread.start()
        return store, snapshot

    def save_run(self, run: Run) -> None:
        """Save ``run``'s own fields (`run_record`).

        Example::

            store.save_run(run)
        """
        self._queue.put(_SaveRun(run.id, run_record(run)))

    def save_node(self, run_id: str, node_id: str, node: NodeStatus) -> None:
        """Save a node's state, pid, exit code and restarts, when one of them changed since last saved.

        Example::

            store.save_node(run.id, "sink", run.nodes["sink"])
        """
        durable = _durable(node)
        if self._nodes.get((run_id, node_id)) != durable:
            self._nodes[(run_id, node_id)] = durable
            self._queue.put(_SaveNode(run_id, node_id, dict(zip(DURABLE_NODE_FIELDS, durable, strict=True))))

    def save_params(self, run_id: str, node_id: str, params: dict[str, Any]) -> None:
        """Save a node's parameters (all of them: key → JSON value; none removes its row).

        Example::

            store.save_params(run.id, "camera", run.params["camera"])
        """
        self._queue.put(_SaveParams(run_id, node_id, dict(params)))

    def add_log(self, run_id: str, record: LogRecord) -> None:
        """Save one log record (the last `LOG_BACKLOG` of each dataflow are kept).

        Example::

            store.add_log(run.id, record)
        """
        self._queue.put(_AddLog(run_id, record))

    def forget(self, run_ids: list[str]) -> None:
        """Remove dataflows, with their nodes and logs (``clean``).

        Example::

            store.forget(["01a2..."])
        """
        for run_id in run_ids:
            for key in [k for k in self._nodes if k[0] == run_id]:
                del self._nodes[key]
            self._queue.put(_Forget(run_id))

    def save_daemon(self, info: DaemonInfo) -> None:
        """Save who a daemon is (machine id, host name, pid), for ``/daemons`` after a restart.

        Example::

            store.save_daemon(daemon.info())
        """
        self._queue.put(_SaveDaemon(info))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every change queued so far is written; whether it was within ``timeout`` seconds.

        Example::

            assert store.flush(timeout=5.0)
        """
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer thread (idempotent).

        Example::

            store.close()
        """
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _write_loop(self) -> None:
        connection = _connect(self.path)
        try:
            closing = False
            while not closing:
                batch, closing = self._gather()
                self._write(connection, [op for op in batch if not isinstance(op, threading.Event)])
                for op in batch:
                    if isinstance(op, threading.Event):
                        op.set()
        finally:
            connection.close()

    def _gather(self) -> tuple[list[_Op], bool]:
        """The changes of the next transaction, and whether the writer is asked to end."""
        batch = [self._queue.get()]
        deadline = time.monotonic() + FLUSH_EVERY
        while batch[-1] is not None and not isinstance(batch[-1], threading.Event):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        return batch, batch[-1] is None

    def _write(self, connection: sqlite3.Connection, batch: list[_Op]) -> None:
        if not batch:
            return
        try:
            with connection:
                _apply(connection, batch)
        except sqlite3.Error as exc:
            if not self._failed:
                _log.warning("cannot save the coordinator's state to %s: %s", self.path, exc)
            self._failed = True


def _durable(node: NodeStatus) -> tuple[Any, ...]:
    return tuple(getattr(node, name) for name in DURABLE_NODE_FIELDS)


def _apply(connection: sqlite3.Connection, batch: list[_Op]) -> None:
    """Write ``batch`` in order, the last value of a run or node standing for the ones before."""
    runs: dict[str, str] = {}
    nodes: dict[tuple[str, str], str] = {}
    daemons: dict[str, str] = {}
    logs: list[tuple[str, str]] = []
    for op in batch:
        if isinstance(op, _Forget):
            _flush_rows(connection, runs, nodes, daemons, logs)
            for table, key in (("runs", "id"), ("nodes", "run_id"), ("logs", "run_id"), ("params", "run_id")):
                connection.execute(f"DELETE FROM {table} WHERE {key} = ?", (op.run_id,))
        elif isinstance(op, _SaveRun):
            runs[op.id] = json.dumps(op.body)
        elif isinstance(op, _SaveNode):
            nodes[(op.run_id, op.node)] = json.dumps(op.body)
        elif isinstance(op, _AddLog):
            logs.append((op.run_id, op.record.model_dump_json()))
        elif isinstance(op, _SaveParams):
            _flush_rows(connection, runs, nodes, daemons, logs)  # a run's row before its parameters
            _write_params(connection, op)
        elif isinstance(op, _SaveDaemon):
            daemons[op.info.machine_id] = op.info.model_dump_json()
    _flush_rows(connection, runs, nodes, daemons, logs)


def _flush_rows(
    connection: sqlite3.Connection,
    runs: dict[str, str],
    nodes: dict[tuple[str, str], str],
    daemons: dict[str, str],
    logs: list[tuple[str, str]],
) -> None:
    connection.executemany(
        "INSERT INTO runs (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
        runs.items(),
    )
    connection.executemany(
        "INSERT INTO nodes (run_id, node, body) VALUES (?, ?, ?) "
        "ON CONFLICT (run_id, node) DO UPDATE SET body = excluded.body",
        [(run_id, node, body) for (run_id, node), body in nodes.items()],
    )
    connection.executemany(
        "INSERT INTO daemons (machine_id, body) VALUES (?, ?) "
        "ON CONFLICT (machine_id) DO UPDATE SET body = excluded.body",
        daemons.items(),
    )
    connection.executemany("INSERT INTO logs (run_id, body) VALUES (?, ?)", logs)
    for run_id in {run_id for run_id, _body in logs}:
        _trim_logs(connection, run_id)
    for written in (runs, nodes, daemons, logs):
        written.clear()


def _write_params(connection: sqlite3.Connection, op: _SaveParams) -> None:
    if not op.body:
        connection.execute("DELETE FROM params WHERE run_id = ? AND node = ?", (op.run_id, op.node))
        return
    connection.execute(
        "INSERT INTO params (run_id, node, body) VALUES (?, ?, ?) "
        "ON CONFLICT (run_id, node) DO UPDATE SET body = excluded.body",
        (op.run_id, op.node, json.dumps(op.body)),
    )


def _trim_logs(connection: sqlite3.Connection, run_id: str) -> None:
    """Keep the last `LOG_BACKLOG` records of a dataflow, trimming once `TRIM_EVERY` more came."""
    row = connection.execute(
        "SELECT seq FROM logs WHERE run_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
        (run_id, LOG_BACKLOG + TRIM_EVERY),
    ).fetchone()
    if row is not None:
        oldest_kept = connection.execute(
            "SELECT seq FROM logs WHERE run_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (run_id, LOG_BACKLOG - 1),
        ).fetchone()[0]
        connection.execute("DELETE FROM logs WHERE run_id = ? AND seq < ?", (run_id, oldest_kept))


def _connect(path: Path) -> sqlite3.Connection:
    """A connection to the database at ``path``, created with mode 0600 and its tables if new."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    connection = sqlite3.connect(path, timeout=5.0)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA journal_size_limit=4194304")  # the WAL file shrinks back to 4 MiB
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise ValueError(f"schema version {version}, this Doradus reads {SCHEMA_VERSION}")
        connection.executescript(_SCHEMA)
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        connection.close()
        raise
    return connection


def _load(path: Path) -> Snapshot:
    """What the database at ``path`` holds (created empty when missing)."""
    connection = _connect(path)
    try:
        runs = {rid: run_from_record(json.loads(body)) for rid, body in connection.execute(_RUNS)}
        for run_id, node_id, body in connection.execute("SELECT run_id, node, body FROM nodes"):
            if run_id in runs:
                runs[run_id].nodes[node_id] = NodeStatus.model_validate_json(body)
        for run_id, node_id, body in connection.execute("SELECT run_id, node, body FROM params"):
            if run_id in runs:
                runs[run_id].params[node_id] = dict(json.loads(body))
        for run_id, body in connection.execute("SELECT run_id, body FROM logs ORDER BY seq"):
            if run_id in runs:
                runs[run_id].logs.append(LogRecord.model_validate_json(body))
        daemons = {
            machine: DaemonInfo.model_validate_json(body)
            for machine, body in connection.execute("SELECT machine_id, body FROM daemons")
        }
    finally:
        connection.close()
    return Snapshot(list(runs.values()), daemons)


_RUNS = "SELECT id, body FROM runs ORDER BY rowid"
