"""The node API: receive events, send outputs.

Example (inside a node started by ``doradus run``)::

    from doradus import Node, Input

    node = Node()
    for event in node:
        if isinstance(event, Input):
            node.send_output("out", event.value, event.metadata)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from doradus._exceptions import MetadataError, NodeError, UnknownOutputError
from doradus._node.at_exit import report_at_exit
from doradus._node.attach import attach
from doradus._node.channel import DaemonChannel, link_specs
from doradus._node.config import descriptor_text, load_codecs
from doradus._node.events import Event
from doradus._node.inbox import Inbox
from doradus._node.input_timeouts import InputTimeouts
from doradus._node.log_handler import install as install_log_handler
from doradus._node.log_methods import LogMethods
from doradus._node.outputs import OutputPlan
from doradus._node.outputs import encoded_array as _encoded_array  # noqa: F401 - tests read it here
from doradus._node.receive import EventReader, InboxReceiver, lossless_inputs
from doradus._node.statistics import NodeCounters
from doradus._node.timers import start_timers
from doradus._observability.otel_env import enabled_signals
from doradus._wire.metadata import encode_metadata
from doradus._wire.protocol import MAX_METADATA
from doradus.backends import DEFAULT_LOCAL_BACKEND, Backend, Outgoing, get_backend

if TYPE_CHECKING:
    import numpy as np

    from doradus._observability.telemetry import NodeTelemetry
    from doradus._wire.node_config import NodeConfig
    from doradus.codecs import Codec


class Node(LogMethods):
    """A connection to the running dataflow, for one node.

    ``Node()`` returns only once every edge of the dataflow is wired and every
    node is ready, so what you send right away reaches your receivers.

    Thread safety: ``send_output``, ``send_output_raw``, ``allocate``, the ``log``
    methods, ``statistics`` and the information methods may be called from several
    threads at once. Each message is sent whole under the node's send lock, so
    messages of different threads never interleave, and the messages of one output
    reach every receiver in the order their sends took the lock: each thread's
    messages keep the order that thread sent them in. Receiving (``next``,
    ``try_recv``, ``drain``, iteration, ``recv_async``) is for one consumer thread at
    a time (each event comes out once); ``close`` once, after the senders stopped.

    Args:
        node_id: needed only for ``path: dynamic`` nodes, which you start
            yourself; a node started by Doradus finds its identity in its
            environment (giving its own id is allowed).

    Raises:
        NodeError: not started by Doradus and no dynamic node of that id
            waits in a running dataflow.

    Example::

        node = Node()
        node.send_output("status", pa.array(["ready"]))
        for event in node:
            ...
    """

    def __init__(self, node_id: str | None = None) -> None:
        sock, config, fds = attach(node_id)
        self._config: NodeConfig = config
        self.id: str = config["node_id"]
        self._send_lock = threading.Lock()
        self._seq = 0
        inputs = config["inputs"]
        self._counters = NodeCounters(inputs, config["outputs"])
        self._processing = self._counters.processing
        self._handed_ns = 0
        """When the last input message was handed out (`time.perf_counter_ns`; 0: none pending)."""
        # the counters' own dicts: send_output counts into them without a call
        self.sent: dict[str, int] = self._counters.sent
        self.sent_bytes: dict[str, int] = self._counters.sent_bytes
        self._inbox = Inbox(
            {k: int(v["queue_size"]) for k, v in inputs.items()},
            lossless=lossless_inputs(inputs, config["links"]),
        )
        timers = [(k, int(v["interval_ns"])) for k, v in inputs.items() if v["kind"] == "timer"]
        # The daemon sends the node's stdout lines on `send_stdout_as`; the node may not send there.
        self._stdout_output: str | None = config.get("stdout_output")
        self._out_ids: dict[str, bytes] = {
            o: o.encode() for o in config["outputs"] if o != self._stdout_output
        }
        out_codecs: dict[str, Codec]
        out_codecs, in_codecs = load_codecs(config.get("output_formats") or {}, inputs)
        self._outputs = {o: OutputPlan(out, out_codecs.get(o)) for o, out in self._out_ids.items()}
        self._backend: Backend = _make_backend(self.id, InboxReceiver(self._inbox), config)
        self._inbox.waiter = self._backend.wait
        if self._inbox.lossless:  # backpressure: each message taken gives its sender room for one more
            self._inbox.on_taken = self._backend.taken
        self._backend.open(link_specs(config["links"]), fds)
        self._channel = DaemonChannel(sock, self.id, self._inbox, self._backend, self._counters)
        self._channel.handed_ns = lambda: self._handed_ns
        self._channel.input_sources = {
            k: v["source"].split("/")[0] for k, v in inputs.items() if v["kind"] == "node"
        }
        # Subscriptions are confirmed once open returns: only now may senders start (a broker
        # forgets what is published before a subscriber exists).
        self._channel.send({"op": "ready"})
        self._timer_stop = threading.Event()
        self._reader = EventReader(self._inbox, self._counters, inputs, in_codecs, self._timer_stop)
        self._channel.on_input_format = self._reader.switch_format
        self._log = logging.getLogger(f"doradus.node.{self.id}")
        install_log_handler(self._channel.send_log, self._current_ids)
        self._telemetry: NodeTelemetry | None = None
        if enabled_signals():
            self._telemetry = self._reader.telemetry = self._start_telemetry()
        self._channel.await_start()
        self._pop = self._inbox.pop  # with input timeouts, a pop that keeps their deadlines (below)
        self._timeouts: InputTimeouts | None = None
        if timed := {k: float(v["timeout"]) for k, v in inputs.items() if "timeout" in v}:
            self._timeouts = InputTimeouts(timed, self._inbox)
            self._pop = self._timeouts.pop
        self._channel.start_watching()
        report_at_exit(self)
        self._backend.start()
        if timers:
            start_timers(self._inbox, timers, self._timer_stop)
        self._reader.stop_if_all_closed()

    # ----------------------------------------------------------------- setup
    def _start_telemetry(self) -> NodeTelemetry | None:
        try:
            from doradus._observability.telemetry import NodeTelemetry
        except ImportError as exc:
            self._log.warning(
                "OpenTelemetry export is configured (OTEL_EXPORTER_OTLP_ENDPOINT) but its packages "
                "are missing (%s): pip install 'doradus[telemetry]'",
                exc,
            )
            return None
        inputs = self._config["inputs"]
        telemetry = NodeTelemetry.create(
            node_id=self.id,
            dataflow=str(self._config.get("dataflow_name") or Path(self._config["dataflow"]).stem),
            run_id=str(self._config["run_id"]),
            sources={k: str(v.get("source")) for k, v in inputs.items()},
        )
        if telemetry is not None:
            inbox = self._inbox
            telemetry.observe_inputs(
                lambda: {k: inbox.dropped[k] for k in inputs},
                lambda: {k: inbox.depth(k) for k in inputs},
            )
        return telemetry

    def _current_ids(self) -> tuple[str | None, str | None]:
        telemetry = self._telemetry
        return (None, None) if telemetry is None else telemetry.current_ids()

    def _report_statistics(self) -> None:
        """Send ``{"op": "stats", ...}`` to the daemon (off the message path; errors ignored)."""
        self._channel.report_statistics()

    # -------------------------------------------------------------- receiving
    def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or ``None`` when the stream has ended or ``timeout`` passed.

        Args:
            timeout: seconds to wait at most; ``None`` waits until an event
                arrives or the stream ends.

        Example::

            event = node.next(timeout=0.1)   # None after 0.1 s of silence
        """
        if self._reader.ended:
            return None
        if self._handed_ns:
            self._processing.append(perf_counter_ns() - self._handed_ns)
            self._handed_ns = 0
        if self._telemetry is not None:
            self._telemetry.end_processing()
        got = self._pop(0)
        if got is None:
            self._backend.idle()  # about to wait: housekeeping (e.g. releases) off the hot path
            got = self._pop(timeout)
            if got is None:
                return None
        event = self._reader.event(got)  # `_hand_out`, inline: one call fewer per message
        if got[0] is not None:
            self._handed_ns = perf_counter_ns()
        return event

    def _hand_out(self, got: tuple[str | None, Any]) -> Event:
        """The event of what the inbox popped; an input message starts the processing clock."""
        event = self._reader.event(got)
        if got[0] is not None:
            self._handed_ns = perf_counter_ns()
        return event

    def try_recv(self) -> Event | None:
        """The next event if one is ready, else ``None``; never blocks.

        Example::

            while (event := node.try_recv()) is not None:
                handle(event)
        """
        return self.next(timeout=0)

    def drain(self) -> list[Event]:
        """Every event ready now, oldest first; never blocks.

        Example::

            batch = node.drain()
        """
        events: list[Event] = []
        while (event := self.try_recv()) is not None:
            events.append(event)
        return events

    def is_empty(self) -> bool:
        """True when no event is waiting.

        Example::

            if node.is_empty(): do_background_work()
        """
        return len(self._inbox) == 0 and not (self._timeouts and self._timeouts.held)

    def __iter__(self) -> Iterator[Event]:
        """Iterate over events until all inputs are closed or a Stop arrives.

        The final ``Stop`` event is yielded before the iteration ends.
        """
        while (event := self.next()) is not None:
            yield event

    async def recv_async(self, timeout: float | None = None) -> Event | None:  # noqa: ASYNC109 - dora's signature
        """Await the next event (``None`` on timeout or end of stream).

        Example::

            event = await node.recv_async(timeout=1.0)
        """
        if self._reader.ended:
            return None
        if self._handed_ns:
            self._processing.append(perf_counter_ns() - self._handed_ns)
            self._handed_ns = 0
        got = self._pop(0)
        if got is None:
            import asyncio  # here, not at the top: a node that never awaits does not load it

            self._backend.idle()
            got = await asyncio.to_thread(self._pop, timeout)
        return None if got is None else self._hand_out(got)

    async def __aiter__(self) -> AsyncIterator[Event]:
        """``async for event in node`` until the stream ends."""
        while (event := await self.recv_async()) is not None:
            yield event

    # ---------------------------------------------------------------- sending
    def send_output(self, output_id: str, data: Any, metadata: dict[str, Any] | None = None) -> None:
        """Send ``data`` on ``output_id`` to every input that subscribes to it.

        Args:
            output_id: an output declared for this node in the dataflow.
            data: a pyarrow array (or RecordBatch), a numpy array, ``bytes`` /
                ``memoryview``, or a list. Arrays from :meth:`allocate` go
                without any copy.
            metadata: optional key-values (bool, int, float, str, datetime, or
                lists of int/float/str) delivered with the message.

        Raises:
            UnknownOutputError: the output is not declared.
            NodeError: the output carries this node's stdout lines (``send_stdout_as``).
            MetadataError: metadata holds a value that cannot travel.
            EncodeError: ``data`` cannot be sent.
            ResourceLimitError: a system limit (open files, memory mappings, memory)
                stopped it; the message names the limit and the fix.

        Example::

            node.send_output("frame", np.zeros(640 * 480, np.uint8), {"seq": 1})
        """
        output = self._outputs.get(output_id)
        if output is None:
            raise self._not_sendable(output_id)
        array, plan, tag = output.prepare(output_id, data)
        if self._telemetry is not None:
            metadata = self._telemetry.on_send(output_id, metadata, plan.size)
        meta = encode_metadata(metadata) if metadata else b""
        if len(meta) > MAX_METADATA:
            raise MetadataError(
                f"metadata of {len(meta)} B exceeds {MAX_METADATA} B; metadata is for small key-values: "
                "send large data as the message value or on another output"
            )
        stamp = time.time_ns()
        with self._send_lock:
            self._seq += 1
            self.sent[output_id] += 1
            self.sent_bytes[output_id] += plan.size
            self._backend.send(Outgoing(output.out, array, plan, meta, self._seq, stamp, tag))

    def _not_sendable(self, output_id: str) -> NodeError:
        if output_id == self._stdout_output:
            return NodeError(
                f"output {output_id!r} of node {self.id!r} carries the node's stdout lines "
                "(`send_stdout_as`): print the text instead, or send on another output",
                node_id=self.id,
            )
        return UnknownOutputError(output_id, node_id=self.id, declared=list(self._out_ids))

    def allocate(self, nbytes: int) -> np.ndarray:
        """A writable ``uint8`` numpy array of ``nbytes`` in shared memory.

        Fill it (``arr.view(np.float32)[:] = ...``, or build a pyarrow array
        over it with ``pa.array(arr)``) and pass it — or any array viewing it —
        to :meth:`send_output`: nothing is copied. Do not write into it after
        sending; receivers read the same memory.

        Raises:
            ResourceLimitError: a system limit (open files, memory mappings, memory)
                stopped it; the message names the limit and the fix.

        Example::

            frame = node.allocate(640 * 480 * 3)
            camera.read_into(frame)
            node.send_output("image", frame)
        """
        return self._backend.allocate(nbytes)

    @contextmanager
    def send_output_raw(
        self, output_id: str, data_length: int, metadata: dict[str, Any] | None = None
    ) -> Iterator[memoryview]:
        """Fill a shared-memory buffer, sent without a copy when the block ends.

        Arrives as a ``UInt8Array`` of ``data_length`` bytes.

        Raises:
            UnknownOutputError: the output is not declared.
            ResourceLimitError: a system limit (open files, memory mappings, memory)
                stopped it; the message names the limit and the fix.

        Example::

            with node.send_output_raw("blob", 1024) as buf:
                buf[:] = payload
        """
        if output_id not in self._out_ids:
            raise self._not_sendable(output_id)
        array = self.allocate(data_length)
        yield array.data
        self.send_output(output_id, array, metadata)

    # ------------------------------------------------------------------- info
    def dataflow_id(self) -> str:
        """The id of the running dataflow (the run id).

        Example::

            print(node.dataflow_id())
        """
        return str(self._config["run_id"])

    def dataflow_descriptor(self) -> dict[str, Any]:
        """The dataflow file as parsed YAML.

        Example::

            nodes = node.dataflow_descriptor()["nodes"]
        """
        import yaml

        loaded: dict[str, Any] = yaml.safe_load(descriptor_text(self._config))
        return loaded

    def node_config(self) -> dict[str, Any]:
        """This node's ``inputs`` (id → source) and ``outputs`` (ids).

        Example::

            node.node_config()["outputs"]
        """
        return {
            "inputs": {k: v["source"] for k, v in self._config["inputs"].items()},
            "outputs": list(self._config["outputs"]),
        }

    def restart_count(self) -> int:
        """How many times this node was restarted (0 on first start).

        Example::

            if node.restart_count(): recover_state()
        """
        return int(self._config.get("restart_count", 0))

    def is_restart(self) -> bool:
        """True when this process is a restart of the node.

        Example::

            node.is_restart()
        """
        return self.restart_count() > 0

    def parameters(self) -> dict[str, Any]:
        """The node's current parameters (``doradus param set``): key → JSON value, a new dict each call.

        A change holds here from when it arrives, before its ``ParamUpdate``/``ParamDeleted``
        event is handed out; a restarted node has them from the start. Empty under a ``doradus
        run`` alone (parameters need a coordinator). Thread-safe.

        Example::

            exposure = node.parameters().get("exposure", 0.01)
        """
        return self._channel.parameters()

    def statistics(self) -> dict[str, Any]:
        """Per-input received/delivered/dropped/queued and per-output sent counts.

        Example::

            node.statistics()["inputs"]["image"]["dropped"]
        """
        return {**self._counters.snapshot(self._inbox), "backend": self._backend.statistics()}

    def close(self) -> None:
        """Stop receiving and close every link (receivers see their inputs close).

        Example::

            node.close()
        """
        self._timer_stop.set()
        self._backend.drain()  # what its sockets still hold counts as undelivered
        self._backend.close()
        self._report_statistics()  # the final counts, for `doradus status` after the node ended
        if self._telemetry is not None:
            self._telemetry.shutdown()
        self._channel.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_backend(node_id: str, receiver: InboxReceiver, config: NodeConfig) -> Backend:
    """The node's backend: the one its links use, or one per backend they use."""
    names = config["backends"] or [DEFAULT_LOCAL_BACKEND]
    if len(names) == 1:
        return get_backend(names[0])(node_id, receiver)
    from doradus.backends._mux import MultiBackend

    return MultiBackend(node_id, receiver, {name: get_backend(name) for name in names})
