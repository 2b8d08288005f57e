"""What a run measures: each node's state and counters, each edge's traffic, the queues' drops.

Counters come from the nodes' ``stats`` reports (`doradus._runtime.stats`); CPU and memory
from sampling the processes (`ProcessSampler`). `node_metrics` feeds ``status``, ``top``,
the coordinator and the OpenTelemetry export; `edges` the run folder's ``edges.json``
(`write_edges`); `dropped_inputs` the end of run summary.

Example::

    node_metrics(state, ProcessSampler())["camera"]["output_rate"]   # e.g. 30.0
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from pathlib import Path
from typing import Any, TypedDict

from doradus._dataflow.model import NodeSource, TimerSource
from doradus._runtime.links import link_backend
from doradus._runtime.processes import InputDrops, NodeProcess
from doradus._runtime.state import RunState
from doradus._runtime.stats import NodeStats
from doradus._wire.format_spec import FormatSpec

EDGES_FILE = "edges.json"
"""The run folder's record of its edges (`write_edges`)."""


class Sample(TypedDict, total=False):
    """CPU % and resident memory of a process and its children; empty when it has gone.

    Example:
        >>> Sample(cpu_percent=0.0, memory_bytes=41943040)["memory_bytes"] // 2**20
        40
    """

    cpu_percent: float
    memory_bytes: int


class EdgeRecord(TypedDict):
    """One edge of a run in ``edges.json``: which backend carried it and what went through.

    ``source`` is ``node/output`` (or the timer or log source), ``target`` ``node/input``;
    ``messages`` and ``dropped`` are what the receiving input counted (arrivals, and drops
    by its queue policy; ``backpressure_timeouts``: messages its sender did not send after
    waiting ``backpressure_timeout`` for room), ``bytes`` what the source output sent (every
    message goes to each of its edges); ``data_format`` the format the input reads (its source
    output's, as the run last set it: ``doradus node set --data-format``), null for a timer or
    the logs.

    Example:
        >>> edge: EdgeRecord = {"source": "camera/image", "target": "detector/image", "backend": "shm",
        ...                     "messages": 30, "bytes": 2048, "dropped": 0, "backpressure_timeouts": 0,
        ...                     "data_format": "arrow"}
        >>> edge["backend"]
        'shm'
    """

    source: str
    target: str
    backend: str
    messages: int
    bytes: int
    dropped: int
    backpressure_timeouts: int
    data_format: str | None


class ProcessSampler:
    """CPU % and resident memory of a process and its children, via psutil.

    ``psutil.Process`` objects are cached per pid, so CPU % is measured
    between two calls (the first call of a pid reports 0.0).

    Example:
        >>> sample = ProcessSampler().sample(os.getpid())
        >>> sample["cpu_percent"], sample["memory_bytes"] > 0
        (0.0, True)
    """

    def __init__(self) -> None:
        self._procs: dict[int, Any] = {}
        self._lock = threading.Lock()

    def sample(self, pid: int) -> Sample:
        """``{"cpu_percent": ..., "memory_bytes": ...}``, or ``{}`` if the process is gone.

        Example:
            >>> ProcessSampler().sample(2**22 + 1)   # no such process
            {}
        """
        psutil: Any = importlib.import_module("psutil")  # untyped; a core dependency
        with self._lock:
            try:
                proc = self._procs.get(pid)
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                # cached children too: cpu_percent measures since the previous call on that object
                family = [proc, *(self._procs.setdefault(c.pid, c) for c in proc.children(recursive=True))]
                cpu = 0.0
                memory = 0
                for member in family:
                    try:
                        cpu += member.cpu_percent(None)
                        memory += member.memory_info().rss
                    except psutil.Error:
                        pass
                return {"cpu_percent": round(cpu, 1), "memory_bytes": memory}
            except psutil.Error:
                self._procs.pop(pid, None)
                return {}


def node_metrics(state: RunState, sampler: ProcessSampler) -> dict[str, dict[str, Any]]:
    """The latest state and metrics of every node, keyed by node id.

    Per node: ``state`` (``starting``, ``running``, ``paused``, ``restarting``, ``exited``,
    ``failed``, ``stopped``), ``reason`` (why, when that needs saying: a node not ready, not
    reading its inputs, ended by the watchdog: `doradus._runtime.liveness`), ``pid``,
    ``exit_code``, ``input_rate`` (messages/s handed to the node over the last report
    interval, summed over its inputs: 0 while it is paused) and
    ``output_rate`` (sent, summed over outputs), ``dropped`` and ``queued`` (totals over
    inputs), ``restart_dropped`` (messages its senders could not deliver while it
    restarted), ``p50_latency_us``, ``processing_p50_us`` (the median time its code took
    with one input message), ``errors``, ``restarts`` (times restarted in this
    run), ``data_formats`` (each output's format, ``avro (reading.avsc)``), ``cpu_percent``
    and ``memory_bytes`` (the
    process and its children, via psutil), and once the node has reported,
    ``inputs`` and ``outputs`` (per input: source, received, dropped,
    queued, latency histogram; per output: sent, bytes). Values not
    measured yet are ``None``. Rates come from the nodes' reports, sent every second.

    Example:
        >>> from doradus._dataflow.model import Dataflow, NodeSpec
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(NodeSpec(id="a", kind="python"),))
        >>> state = RunState.create(flow, run_id="r", machine="m", out_dir=Path("/tmp/r"))
        >>> node_metrics(state, ProcessSampler())["a"]["state"]
        'starting'
    """
    with state.lock:
        snapshot = [
            (node_id, p.pid, p.exited, p.returncode, _state_of(p), p.restarts, p.stats)
            for node_id, p in state.nodes.items()
        ]
        reasons = {node_id: p.reason for node_id, p in state.nodes.items()}
        formats = {
            node_id: {output: str(spec) for output, spec in p.spec.output_formats.items()}
            for node_id, p in state.nodes.items()
        }
        missed: dict[str, int] = {}
        for p in state.nodes.values():
            for peer, count in (p.stats.peer_restart_drops if p.stats is not None else {}).items():
                missed[peer] = missed.get(peer, 0) + count
    metrics: dict[str, dict[str, Any]] = {}
    for node_id, pid, exited, code, shown, restarts, stats in snapshot:
        entry = _metrics_of(shown, exited, code, pid, stats)
        entry["restarts"] = restarts
        entry["reason"] = reasons[node_id]
        entry["data_formats"] = formats[node_id]
        entry["restart_dropped"] = missed.get(node_id, 0)
        if not exited and pid is not None:
            entry.update(sampler.sample(pid))
        metrics[node_id] = entry
    return metrics


def _state_of(proc: NodeProcess) -> str:
    """A node's state as `node_metrics` says it (caller holds the run's lock)."""
    if proc.restarting:
        return "restarting"
    if proc.exited:
        if proc.stop_requested:
            return "stopped"
        return "exited" if proc.returncode == 0 and not proc.liveness else "failed"
    if proc.paused:
        return "paused"
    return "running" if proc.registered else "starting"


def _metrics_of(
    shown: str, exited: bool, code: int | None, pid: int | None, stats: NodeStats | None
) -> dict[str, Any]:
    """One node's entry of `node_metrics`, before sampling its process."""
    exited = exited and shown != "restarting"
    entry: dict[str, Any] = {
        "state": shown,
        "pid": pid,
        "exit_code": code if exited else None,
        "input_rate": None,
        "output_rate": None,
        "dropped": None,
        "backpressure_timeouts": None,
        "queued": None,
        "p50_latency_us": None,
        "processing_p50_us": None,
        "errors": None,
        "cpu_percent": None,
        "memory_bytes": None,
    }
    if stats is not None:
        entry["input_rate"] = stats.input_rate
        entry["output_rate"] = stats.output_rate
        entry["dropped"] = stats.dropped
        entry["backpressure_timeouts"] = stats.backpressure_timeouts
        entry["queued"] = stats.queued
        entry["p50_latency_us"] = stats.p50_latency_us
        entry["processing_p50_us"] = stats.processing_p50_us
        entry["errors"] = stats.errors
        entry["inputs"] = stats.inputs
        entry["outputs"] = stats.outputs
    if exited:
        entry["input_rate"] = entry["output_rate"] = 0.0
        entry["queued"] = 0 if stats is not None else None
    return entry


def edges(state: RunState) -> list[EdgeRecord]:
    """One record per edge into a node here: which backend carried it and what went through.

    Example:
        >>> from doradus._dataflow.model import Dataflow, InputSpec, NodeSpec
        >>> tick = InputSpec("tick", TimerSource("dora/timer/millis/100", 100_000_000))
        >>> node = NodeSpec(id="a", kind="python", inputs={"tick": tick})
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(node,))
        >>> state = RunState.create(flow, run_id="r", machine="m", out_dir=Path("/tmp/r"))
        >>> [(e["source"], e["target"], e["backend"]) for e in edges(state)]
        [('dora/timer/millis/100', 'a/tick', 'timer')]
    """
    with state.lock:
        stats = {node_id: p.stats for node_id, p in state.nodes.items()}
        specs = state.dataflow.nodes
    result: list[EdgeRecord] = []
    for spec in specs:
        if spec.id not in stats:
            continue  # runs on another machine: its daemon reports its edges
        reported = stats[spec.id]
        inputs = reported.inputs if reported is not None else {}
        for input_id, inp in spec.inputs.items():
            counters = inputs.get(input_id)
            source = inp.source
            data_format = None
            if isinstance(source, NodeSource):
                data_format = spec.input_formats.get(input_id, FormatSpec()).name
                backend = state.edge_backends.get(
                    (source.node, source.output), link_backend(state.dataflow, state.specs[source.node])
                )
                sender = stats.get(source.node)
                sent = sender.outputs.get(source.output) if sender is not None else None
                size = int(sent.get("bytes", 0)) if sent else 0
                relay = state.relays.get(source.node)
                if relay is not None and relay.output == source.output:
                    size = relay.bytes  # stdout lines: the daemon sent them, not the node
            else:
                backend = "timer" if isinstance(source, TimerSource) else "logs"
                size = 0
            result.append(
                {
                    "source": str(source) if isinstance(source, NodeSource) else source.source,
                    "target": f"{spec.id}/{input_id}",
                    "backend": backend,
                    "messages": int(counters.get("received", 0)) if counters else 0,
                    "bytes": size,
                    "dropped": int(counters.get("dropped", 0)) if counters else 0,
                    "backpressure_timeouts": int(counters.get("backpressure_timeouts", 0)) if counters else 0,
                    "data_format": data_format,
                }
            )
    return result


def dropped_inputs(state: RunState, node_id: str | None = None, *, ended: bool = False) -> list[InputDrops]:
    """The inputs whose full queue dropped messages, as last reported (of one node, or all).

    An input of a node that has ended (or of ``node_id``, with ``ended``: its connection has
    closed after its last report) also counts the messages still in its queue then
    (``undelivered``: the node's last report says how many it left).

    Example::

        dropped_inputs(state)[0].message   # 'input detector/image dropped 12 messages (...)'
    """
    with state.lock:
        stats = {nid: p.stats for nid, p in state.nodes.items() if p.stats}
        done = {
            nid
            for nid, p in state.nodes.items()
            if (p.exited or (ended and nid == node_id)) and not p.restarting
        }
    found = []
    for spec in state.dataflow.nodes:
        reported = stats.get(spec.id)
        if reported is None or node_id not in (None, spec.id):
            continue
        for input_id, inp in spec.inputs.items():
            counters = reported.inputs.get(input_id)
            dropped = int(counters.get("dropped", 0)) if counters else 0
            left = int(counters.get("queued", 0)) if counters and spec.id in done else 0
            if dropped or left:
                source = str(inp.source) if isinstance(inp.source, NodeSource) else inp.source.source
                shed = int(counters.get("shed", 0)) if counters else 0
                found.append(
                    InputDrops(
                        spec.id, input_id, source, dropped, inp.queue_size, inp.queue_policy, left, shed
                    )
                )
    return found


def write_edges(out_dir: Path, mine: list[EdgeRecord], *, merge: bool) -> Path:
    """Write ``mine`` to ``out_dir/edges.json``; returns the file.

    With ``merge`` (a run across machines sharing one folder), each daemon merges its
    edges (by target) into the file under a lock.

    Example::

        write_edges(Path("out/01J..."), edges(state), merge=False)   # PosixPath('out/01J.../edges.json')
    """
    import fcntl

    path = out_dir / EDGES_FILE
    folder = os.open(out_dir, os.O_RDONLY)  # the lock: the run folder itself
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        merged: dict[str, Any] = {}
        if merge and path.exists():
            try:
                merged = {e["target"]: e for e in json.loads(path.read_text())}
            except (ValueError, KeyError, TypeError):
                merged = {}
        merged.update({e["target"]: e for e in mine})
        path.write_text(json.dumps(list(merged.values()), indent=2) + "\n")
    finally:
        os.close(folder)
    return path
