"""The local daemon: spawns a dataflow's nodes, wires their links, watches them.

It is off the message hot path: it creates one ``SOCK_SEQPACKET`` socket pair
per (sender node, receiver node), hands each node its ends when the node
registers on the control socket, starts everyone once all nodes are ready,
and then only watches processes and relays stop requests.

`LocalDaemon` is the facade of one run's parts, each in its module:

- `state`: what the parts share (the nodes' records, `processes`; one lock);
- `resources`: whether the machine can hold the run;
- `links`: the links between nodes, on the backends their hooks choose;
- `spawn`: starting nodes through the run's keeper (`doradus._unsafe.keeper`): nothing
  of a run outlives its daemon, whatever kills the daemon;
- `output`: one thread reading every node's stdout and stderr and the keeper's reports
  (a node has ended when its process has, whoever still holds its pipes);
- `control_socket`: registration (`config`), the start barrier, ``stop``, ``peer_gone``;
  each registered node has a thread reading its control socket;
- `run_log` and `log_inputs`: the run's records, and the nodes that read them;
- `metrics` (from `stats`): what the nodes report and the processes use;
- `ending`: exits, signals past the grace, waiting for the last node;
- `actions`, `node_stop` and `restart`: pausing, resuming, stopping and restarting one node
  while the run goes on (`format_change`: with its outputs in a new data format);
- `params`: each node's parameters (``doradus param``), told to it as they change and when it
  registers;
- `restart_policy`: starting a node again when it ends, as its ``restart_policy`` says;
- `liveness`: nodes that do not start, stop reading or never finish (the ``reason`` of a state);
- `taps`: the run's topic socket, where ``doradus topic`` lists, taps and publishes outputs.

Example::

    daemon = LocalDaemon(dataflow, run_id=new_run_id(), out_dir=Path("out/run"))
    daemon.start()
    results = daemon.wait()
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doradus._dataflow.format_change import FormatChange, SchemaValue
from doradus._dataflow.model import Dataflow, NodeSpec
from doradus._observability.otel_env import enabled_signals
from doradus._observability.store import LogStore
from doradus._paths import clean_stale_runs, new_run_folder
from doradus._runtime import actions, ending, metrics, node_stop
from doradus._runtime.control_socket import ControlSocket
from doradus._runtime.format_change import write_descriptor
from doradus._runtime.links import LinkWiring, link_backend
from doradus._runtime.liveness import Watchdog
from doradus._runtime.log_inputs import LogInputs
from doradus._runtime.output import OutputReader
from doradus._runtime.params import NodeParameters
from doradus._runtime.processes import InputDrops, NodeResult
from doradus._runtime.resources import check_resources, raise_open_file_limit
from doradus._runtime.restart import Restarter
from doradus._runtime.restart_policy import Reviver
from doradus._runtime.run_log import RecordSink, RunLog
from doradus._runtime.spawn import Spawner
from doradus._runtime.state import RunState
from doradus._runtime.taps import TapServer

if TYPE_CHECKING:
    from doradus._observability.telemetry import RuntimeTelemetry


class LocalDaemon:
    """Runs one dataflow on this machine.

    Args:
        dataflow: the dataflow.
        run_id: the run's id.
        out_dir: the run's folder (``logs.jsonl``, ``log_<node>.txt``, ``edges.json``).
        extra_env: variables set for every node (``doradus run --env``).
        on_record: called with every log record of the run kept at its level.
        log_level: the run's level (None: each node's ``DORADUS_LOG_LEVEL``, else INFO).
        machine: this machine's name (default: the host name).
        dataflow_name: the name records carry (default: the dataflow's).
        placement: for a run across machines, node id → machine: this daemon runs the
            nodes placed on ``machine`` (empty: every node).
        remote: what the coordinator gathered from every daemon: ``listen``
            (``"<receiver>|<backend>"`` → ``host:port``) and ``router`` (see
            `Backend.machine_router`).
    """

    def __init__(
        self,
        dataflow: Dataflow,
        *,
        run_id: str,
        out_dir: Path,
        extra_env: dict[str, str] | None = None,
        on_record: RecordSink | None = None,
        log_level: str | None = None,
        machine: str | None = None,
        dataflow_name: str | None = None,
        placement: dict[str, str] | None = None,
        remote: dict[str, Any] | None = None,
    ) -> None:
        self.placement = dict(placement or {})
        self.remote = dict(remote or {})
        self.extra_env = dict(extra_env or {})
        self.state = state = RunState.create(
            dataflow,
            run_id=run_id,
            machine=machine or socket.gethostname(),
            out_dir=out_dir,
            dataflow_name=dataflow_name,
            placement=self.placement,
        )
        self.dataflow, self.run_id, self.machine, self.out_dir = dataflow, run_id, state.machine, out_dir
        self.dataflow_name = state.dataflow_name
        self.nodes = state.nodes
        self.edge_backends = state.edge_backends
        self.relays = state.relays
        self.log_inputs = LogInputs(state)
        self.run_log = RunLog(
            state, LogStore(out_dir), log_level=log_level, on_record=on_record, log_inputs=self.log_inputs
        )
        self.store = self.run_log.store
        self.log_level = self.run_log.log_level
        self.wiring = LinkWiring(state, self.placement, self.remote)
        clean_stale_runs()  # what runs killed with their keeper left (their supervisor has gone)
        self.rundir = new_run_folder(run_id)
        self.control = ControlSocket(state, self.run_log, self.log_inputs, self.rundir)
        self.control_path = self.control.path
        self.params = NodeParameters(state)
        self.control.after_config = self.params.send_all
        self.taps = TapServer(state, self.rundir, self.placement)
        self.output = OutputReader(state, self.run_log)
        self.spawner = Spawner(state, self.run_log, self.output, self.control, extra_env=self.extra_env)
        self.restarter = Restarter(state, self.run_log, self.control, self.spawner, extra_env=self.extra_env)
        self.reviver = Reviver(state, self.run_log, self.control, self.restarter)
        self.spawner.on_exit = self.reviver.on_exit
        self.restarter.on_ended = self.reviver.settle
        self.watchdog = Watchdog(state, self.run_log)
        self._sampler = metrics.ProcessSampler()

    @property
    def telemetry(self) -> RuntimeTelemetry | None:
        """The run's OpenTelemetry export, when one is configured (set by `start`)."""
        return self.run_log.telemetry

    # ---------------------------------------------------------------- startup
    def start(self) -> None:
        """Check the machine's limits, create the links, open the control socket and spawn every node.

        Raises:
            ResourceLimitError: The run needs more descriptors or memory than the machine
                gives; nothing was started.
        """
        node_files, _hard = raise_open_file_limit()
        self.check_resources()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # The text this run started from, for its nodes (`dataflow_descriptor()`, operators): the
        # file may have changed since, or live on another machine.
        # Mode 0600: the text may hold secrets (a broker's password in a URL).
        write_descriptor(self.out_dir, self.dataflow.text)
        if enabled_signals():
            self.run_log.open_telemetry(self.node_metrics)
        self.control.listen()
        self.taps.listen()
        if any(n.spec.kind == "dynamic" for n in self.nodes.values()):
            self.control.update_dynamic_file()
        self.reviver.prepare()  # before the links: those of nodes with a restart policy are held
        self.wiring.wire(on_relay_error=self._relay_failed)
        keeper = self.spawner.start_keeper(node_files, self.control.folders)
        self.output.start(keeper, on_keeper=self.spawner.keeper_events)
        self.control.serve()
        for proc in self.nodes.values():
            if proc.spec.kind != "dynamic":
                self.spawner.spawn(proc)
        with self.state.lock:
            self.spawner.wait_answered()
            self.control.check_barrier()
        self.watchdog.start()

    def _relay_failed(self, node_id: str, message: str) -> None:
        self.run_log.runtime_record("ERROR", message, node_id)

    def check_resources(self) -> None:
        """Fail early when this machine cannot hold the run: memory and descriptors.

        See `doradus._runtime.resources.check_resources`.

        Raises:
            ResourceLimitError: Naming the limit, the numbers and the fix.

        Example::

            daemon.check_resources()   # ResourceLimitError: this dataflow needs about 464 open files...
        """
        check_resources(self.dataflow, self.nodes)

    def link_backend(self, sender: NodeSpec, *, remote: bool = False) -> str:
        """The backend of a sender's edges (see `doradus._runtime.links.link_backend`).

        Example::

            daemon.link_backend(flow.node("camera"))   # 'shm'
        """
        return link_backend(self.dataflow, sender, remote=remote)

    def inbound_remote(self) -> list[tuple[str, str]]:
        """(receiver, backend) of each link that reaches a node of this machine from another machine.

        Example::

            daemon.inbound_remote()   # [('detector', 'tcp')]
        """
        return self.wiring.inbound_remote()

    def peer_gone(self, node_id: str) -> None:
        """A node on another machine ended: tell the local nodes that read it.

        Example::

            daemon.peer_gone("camera")
        """
        self.control.peer_gone(node_id)

    # --------------------------------------------------------------- steering
    def pause_node(self, node_id: str) -> None:
        """Hold the messages of a node's inputs (they queue, and drop past ``queue_size``) until resumed.

        Raises:
            NodeActionError: no such node here (``status`` 404), or it is not running (409).

        Example::

            daemon.pause_node("detector")   # node_metrics()["detector"]["state"] == "paused"
        """
        actions.pause_node(self.state, node_id)

    def resume_node(self, node_id: str) -> None:
        """Deliver a paused node's messages again, what queued first (`actions.resume_node`).

        Raises:
            NodeActionError: no such node here (``status`` 404), or it is not running (409).

        Example::

            daemon.resume_node("detector")
        """
        actions.resume_node(self.state, node_id)

    def stop_node(self, node_id: str, grace: float = 5.0) -> None:
        """Stop one node for good while the run goes on; returns once it has ended (`node_stop`).

        Its state becomes ``stopped``; the nodes reading its outputs see those inputs close.

        Raises:
            NodeActionError: no such node here (``status`` 404), or it is not running (409).

        Example::

            daemon.stop_node("detector", grace=2.0)
        """
        node_stop.stop_node(self.state, self.run_log, node_id, grace)

    def restart_node(
        self,
        node_id: str,
        env: dict[str, str] | None = None,
        args: str | None = None,
        grace: float = 5.0,
        *,
        data_format: str | None = None,
        schema: SchemaValue | None = None,
    ) -> None:
        """Stop one node and start it again with ``env`` merged over / ``args`` replacing its values.

        Its edges stay wired; returns once the new process is ready (see `restart.Restarter`).
        With ``data_format`` (and ``schema``, as a dataflow file writes it: ``file[:Type]`` or
        ``{file, type}``, relative to the dataflow's folder) its outputs change format: the
        change is checked first as ``doradus check`` would, and its receivers here switch their
        decoders (see `format_change`).

        Raises:
            NodeActionError: no such node here (``status`` 404), it is not running (409), or its
                new arguments or data format are refused (422); nothing was stopped.
            RestartNotSupported: it cannot be restarted (its backend, kind or machines); nothing
                was stopped.

        Example::

            daemon.restart_node("detector", env={"THRESHOLD": "0.7"})
            daemon.restart_node("middle", data_format="avro", schema="reading.avsc")
        """
        formats = FormatChange(data_format, schema)
        self.restarter.restart(node_id, env=env, args=args, grace=grace, formats=formats)
        self.dataflow = self.state.dataflow  # with its new formats

    def node_action(
        self,
        action: str,
        node_id: str,
        *,
        env: Any = None,
        args: Any = None,
        grace: Any = None,
        data_format: Any = None,
        schema: Any = None,
    ) -> None:
        """`pause_node`, `resume_node`, `stop_node` or `restart_node` by name, values as a message has them.

        Raises:
            NodeActionError: an unknown action, no such node here, or one that cannot take it
                (422: a ``data_format`` or ``schema`` of the wrong type, or refused).

        Example::

            daemon.node_action("restart", "detector", env={"X": "2"}, grace=5.0)
        """
        if action == "pause":
            self.pause_node(node_id)
        elif action == "stop":
            self.stop_node(node_id, 5.0 if grace is None else float(grace))
        elif action == "resume":
            self.resume_node(node_id)
        elif action == "restart":
            new_env = {str(k): str(v) for k, v in dict(env).items()} if isinstance(env, dict) else None
            new_args = str(args) if args is not None else None
            try:
                formats = FormatChange.from_values(data_format, schema)
            except ValueError as exc:
                raise actions.NodeActionError(str(exc), node_id=node_id, status=422) from None
            seconds = 5.0 if grace is None else float(grace)
            self.restart_node(
                node_id, new_env, new_args, seconds, data_format=formats.data_format, schema=formats.schema
            )
        else:
            raise actions.NodeActionError(
                f"no node action {action!r} (pause, resume, stop or restart)", node_id=node_id
            )

    def set_node_params(self, node_id: str, params: dict[str, Any], touched: str | None = None) -> None:
        """The node's parameters are ``params`` now (``touched``: the key just set): it is told what changed.

        A node not running now gets them when it registers (so do its restarts: `params`).

        Raises:
            NodeActionError: no such node here (``status`` 404).

        Example::

            daemon.set_node_params("camera", {"exposure": 0.02}, touched="exposure")
        """
        self.params.replace(node_id, params, touched)

    # ------------------------------------------------------------------ logs
    def record(self, record: dict[str, Any]) -> None:
        """Take one record of the run: store, pass on and export it (`RunLog.record`).

        Example::

            daemon.record(make_record("WARN", "slow", node="camera"))
        """
        self.run_log.record(record)

    def runtime_record(
        self, level: str, message: str, node_id: str | None = None, fields: dict[str, Any] | None = None
    ) -> None:
        """A record of the runtime itself (``source: runtime``), e.g. a node started or failed.

        Example::

            daemon.runtime_record("ERROR", "failed: exit status 1", "camera")
        """
        self.run_log.runtime_record(level, message, node_id, fields)

    # ------------------------------------------------------------ stop & wait
    def request_stop(self) -> None:
        """Send Stop to every node (those not yet registered get it on registration)."""
        self.control.request_stop()

    def running(self) -> list[str]:
        """Ids of the nodes started and not ended yet, in dataflow order.

        Example::

            daemon.running()   # ['camera', 'detector']
        """
        return ending.running(self.state)

    def kill(self, sig: int = signal.SIGKILL) -> list[str]:
        """Signal every node's process group that is still running; returns their ids.

        A node gets a WARN record naming the signal the first time it is sent that signal.

        Example::

            daemon.kill(signal.SIGTERM)   # ['detector']
        """
        return ending.kill(self.state, self.run_log, sig)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every node has ended; False if ``timeout`` passed first."""
        return ending.wait(self.state, timeout)

    def results(self) -> list[NodeResult]:
        """How each node ended, in dataflow order."""
        return ending.results(self.state)

    # ---------------------------------------------------------------- metrics
    def node_metrics(self) -> dict[str, dict[str, Any]]:
        """The latest state and metrics of every node, keyed by node id (see `metrics.node_metrics`).

        Example::

            daemon.node_metrics()["camera"]["output_rate"]   # e.g. 30.0
        """
        return metrics.node_metrics(self.state, self._sampler)

    def edges(self) -> list[metrics.EdgeRecord]:
        """One record per edge: which backend carried it and what went through (`metrics.EdgeRecord`).

        Example::

            daemon.edges()[0]["backend"]   # 'shm'
        """
        return metrics.edges(self.state)

    def dropped_inputs(self, node_id: str | None = None) -> list[InputDrops]:
        """The inputs whose full queue dropped messages, as last reported (of one node, or all).

        Example::

            daemon.dropped_inputs()[0].message   # 'input detector/image dropped 12 messages (...)'
        """
        return metrics.dropped_inputs(self.state, node_id)

    def write_edges(self) -> Path:
        """Write `edges` to ``out/<run-id>/edges.json``; returns the file.

        On a multi-machine run sharing one folder, each daemon merges its
        edges (by target) into the file under a lock.

        Example::

            daemon.write_edges()   # PosixPath('out/01J.../edges.json')
        """
        return metrics.write_edges(self.out_dir, self.edges(), merge=bool(self.placement))

    # ------------------------------------------------------------------- end
    def close(self) -> None:
        """End what is left of the run; release its sockets and private runtime folders; flush logs.

        What is left in the nodes' process groups (helpers a node started and left running)
        gets SIGTERM, then SIGKILL `KILL_AFTER_TERM` seconds later; what they print until
        then is logged. Writes ``out/<run-id>/edges.json``.
        """
        state = self.state
        self.watchdog.close()
        if state.closed:
            return
        state.closed = state.ending = True
        keeper = self.spawner.keeper
        if keeper is not None:
            keeper.end(ending.KILL_AFTER_TERM)
        self.output.stop()
        if keeper is not None:
            keeper.close()
        self.control.close()
        ending.release_nodes(state)
        try:
            self.write_edges()
        except OSError:
            pass
        for relay in self.relays.values():
            relay.abort()
        self.store.close()
        if self.telemetry is not None:
            self.telemetry.shutdown()
        self.output.close()
        self.taps.close()
        self.control.remove_folders()
