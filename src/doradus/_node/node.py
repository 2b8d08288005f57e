"""The node API: receive events, send outputs.

Example (inside a node started by ``doradus run``)::

    from doradus import Node, Input

    node = Node()
    for event in node:
        if isinstance(event, Input):
            node.send_output("out", event.value, event.metadata)
"""

from __future__ import annotations

import asyncio
import atexit
import heapq
import json
import logging
import os
import select
import socket
import threading
import time
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from doradus._exceptions import DecodeError, EncodeError, MetadataError, NodeError, UnknownOutputError
from doradus._node.events import STOP_ALL_INPUTS_CLOSED, STOP_MANUAL, Error, Event, Input, InputClosed, Stop
from doradus._node.inbox import Inbox
from doradus._node.log_handler import install as install_log_handler
from doradus._node.log_handler import log as log_at_level
from doradus._observability.otel_env import enabled_signals
from doradus._paths import runs_dir
from doradus._wire.metadata import TIMESTAMP, datetime_from_ns, decode_metadata, encode_metadata
from doradus._wire.protocol import (
    CODEC_MASK,
    CODEC_SHIFT,
    ENV_CONFIG,
    FLAG_IPC,
    LATENCY_BOUNDS_US,
    MAX_METADATA,
    recv_control,
    send_control,
)
from doradus._wire.values import KIND_BUFFERS, KIND_IPC, decode_value, plan_value, to_arrow
from doradus.backends import Backend, LinkSpec, Outgoing, get_backend

_TIMER = object()
STATS_INTERVAL = 1.0
"""Seconds between two ``stats`` reports to the daemon."""
LATENCY_WINDOW = 256
LATENCY_BOUNDS_NS = tuple(b * 1000 for b in LATENCY_BOUNDS_US)
_LOG = object()
"""How many recent one-way latencies the reported p50 is computed over."""


class Node:
    """A connection to the running dataflow, for one node.

    ``Node()`` returns only once every edge of the dataflow is wired and every
    node is ready, so what you send right away reaches your receivers.

    Thread safety: ``send_output`` may be called from several threads at once;
    receiving is meant for one thread (the events come out once each).

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
        self._control, config, fds = _attach(node_id)
        self._config = config
        self.id: str = config["node_id"]
        self._send_lock = threading.Lock()
        self._seq = 0
        self._ended = False
        self._latencies: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self._errors = 0
        self._hist: dict[str, list[int]] = {k: [0] * (len(LATENCY_BOUNDS_NS) + 1) for k in config["inputs"]}
        self._lat_sum: dict[str, int] = dict.fromkeys(config["inputs"], 0)
        self.sent: dict[str, int] = dict.fromkeys(config["outputs"], 0)
        self.sent_bytes: dict[str, int] = dict.fromkeys(config["outputs"], 0)
        inputs: dict[str, Any] = config["inputs"]
        self._inbox = Inbox({k: int(v["queue_size"]) for k, v in inputs.items()})
        self._timers = [(k, int(v["interval_ns"])) for k, v in inputs.items() if v["kind"] == "timer"]
        self._open: set[str] = {k for k, v in inputs.items() if v["kind"] == "node"}
        self._lingering: set[str] = {k for k, v in inputs.items() if v["kind"] == "logs"}
        # The daemon sends the node's stdout lines on `send_stdout_as`; the node may not send there.
        self._stdout_output: str | None = config.get("stdout_output")
        self._out_ids: dict[str, bytes] = {
            o: o.encode() for o in config["outputs"] if o != self._stdout_output
        }
        self._out_codecs: dict[str, Any] = {}
        self._in_codecs: dict[str, Any] = {}
        if config.get("output_formats") or any(v.get("format") for v in inputs.values()):
            self._load_codecs(config)
        self._backend: Backend = _make_backend(self.id, _NodeReceiver(self._inbox), config)
        self._inbox.waiter = self._backend.wait
        links = [
            LinkSpec(
                spec["peer"],
                spec["dir"],
                tuple(spec.get("outputs", ())),
                spec.get("routes", {}),
                {**spec.get("options", {}), "backend": spec.get("backend", "shm")},
            )
            for spec in config["links"]
        ]
        self._backend.open(links, fds)
        # Subscriptions are confirmed once open returns: only now may senders start (a broker
        # forgets what is published before a subscriber exists).
        send_control(self._control, {"op": "ready"})
        self._timer_stop = threading.Event()
        self._log = logging.getLogger(f"doradus.node.{self.id}")
        install_log_handler(self._send_record, self._current_ids)
        self._telemetry: Any = None
        if enabled_signals():
            self._telemetry = self._start_telemetry()
        self._await_start()
        threading.Thread(target=self._watch_control, name="doradus-control", daemon=True).start()
        _report_at_exit(self)
        self._backend.start()
        if self._timers:
            threading.Thread(target=self._run_timers, name="doradus-timers", daemon=True).start()
        if not self._open and not self._timers and not self._lingering:
            self._inbox.push(None, Stop(STOP_ALL_INPUTS_CLOSED))

    # ----------------------------------------------------------------- setup
    def _start_telemetry(self) -> Any:
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

    def _load_codecs(self, config: dict[str, Any]) -> None:
        """Codecs of the outputs and inputs that are not Arrow (loading validates their schemas)."""
        from doradus.codecs import FormatSpec, get_codec

        self._out_codecs = {
            o: get_codec(FormatSpec.from_json(f)) for o, f in config["output_formats"].items()
        }
        self._in_codecs = {
            k: get_codec(FormatSpec.from_json(v["format"]))
            for k, v in config["inputs"].items()
            if v.get("format")
        }

    def _send_record(self, record: dict[str, Any]) -> None:
        send_control(self._control, {"op": "log", "record": record})

    def _current_ids(self) -> tuple[str | None, str | None]:
        telemetry = self._telemetry
        return (None, None) if telemetry is None else telemetry.current_ids()

    def _await_start(self) -> None:
        while True:
            message, extra = recv_control(self._control)
            for fd in extra:
                os.close(fd)
            if message is None:
                raise NodeError("the Doradus daemon went away before the dataflow started", node_id=self.id)
            if message.get("op") == "start":
                return
            if message.get("op") == "stop":
                self._inbox.push(None, Stop(STOP_MANUAL))
                return
            self._on_control(message)

    def _on_control(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "peer_gone":
            gone = getattr(self._backend, "sender_ended", None) or getattr(self._backend, "peer_gone", None)
            if gone is not None:
                gone(str(message.get("peer")))
        elif op == "log_input":
            self._inbox.push(str(message["input"]), (_LOG, json.dumps(message["record"]), time.time_ns()))
        elif op == "logs_closed":
            for input_id in message.get("inputs", ()):
                self._inbox.push(None, InputClosed(str(input_id)))

    def _watch_control(self) -> None:
        poller = select.poll()
        poller.register(self._control, select.POLLIN)
        next_report = time.monotonic() + STATS_INTERVAL
        while True:
            wait = max(0.0, next_report - time.monotonic())
            try:
                ready = poller.poll(wait * 1000)
            except OSError:
                ready = [(0, select.POLLHUP)]
            if time.monotonic() >= next_report:
                next_report += STATS_INTERVAL
                if next_report < time.monotonic():
                    next_report = time.monotonic() + STATS_INTERVAL
                self._report_statistics()
            if not ready:
                continue
            try:
                message, extra = recv_control(self._control)
            except OSError:
                message, extra = None, []
            for fd in extra:
                os.close(fd)
            if message is None:
                self._inbox.push(None, Error("lost the connection to the Doradus daemon"))
                self._inbox.push(None, Stop(STOP_MANUAL))
                return
            if message.get("op") == "stop":
                self._inbox.push(None, Stop(STOP_MANUAL))
            else:
                self._on_control(message)

    def _report_statistics(self) -> None:
        """Send ``{"op": "stats", ...}`` to the daemon (off the message path; errors ignored)."""
        try:
            message = self._stats_message()
            send_control(self._control, message)
        except (OSError, RuntimeError, ValueError):
            pass

    def _stats_message(self) -> dict[str, Any]:
        inbox = self._inbox
        samples = sorted(self._latencies)
        p50 = samples[len(samples) // 2] / 1000 if samples else None
        return {
            "op": "stats",
            "time": time.time(),
            "inputs": {
                k: {
                    "received": inbox.received[k],
                    "dropped": inbox.dropped[k],
                    "queued": inbox.depth(k),
                    "latency_buckets": list(self._hist[k]),
                    "latency_sum_us": self._lat_sum[k] / 1000,
                    "latency_count": sum(self._hist[k]),
                }
                for k in self._config["inputs"]
            },
            "outputs": {k: {"sent": n, "bytes": self.sent_bytes[k]} for k, n in list(self.sent.items())},
            "latency_p50_us": p50,
            "latency_samples": len(samples),
            "errors": self._errors,
        }

    # -------------------------------------------------------------- receiving
    def _run_timers(self) -> None:
        now = time.monotonic_ns()
        heap = [(now + interval, interval, input_id) for input_id, interval in self._timers]
        heapq.heapify(heap)
        while True:
            due, interval, input_id = heap[0]
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0 and self._timer_stop.wait(delay):
                return
            if self._timer_stop.is_set():
                return
            self._inbox.push(input_id, (_TIMER, time.time_ns()))
            nxt = due + interval
            now = time.monotonic_ns()
            if nxt < now:  # fell behind: skip missed ticks rather than bursting
                nxt = now + interval
            heapq.heapreplace(heap, (nxt, interval, input_id))

    def _event(self, got: tuple[str | None, Any]) -> Event:
        input_id, item = got
        if input_id is None:
            event: Event = item
            if isinstance(event, InputClosed):
                self._input_closed(event.id)
            elif isinstance(event, Stop):
                self._ended = True
                self._timer_stop.set()
            elif isinstance(event, Error):
                self._errors += 1
            return event
        if item[0] is _TIMER:
            return Input(input_id, pa.nulls(0), {"timestamp": datetime_from_ns(item[1])})
        if item[0] is _LOG:
            return Input(input_id, pa.array([item[1]]), {"timestamp": datetime_from_ns(item[2])})
        latency = time.time_ns() - item[5]  # one-way latency: now - sender's stamp
        self._latencies.append(latency)
        self._hist[input_id][bisect_left(LATENCY_BOUNDS_NS, latency)] += 1
        self._lat_sum[input_id] += latency
        try:
            event = _decode_input(input_id, item, self._in_codecs.get(input_id) if self._in_codecs else None)
        except DecodeError as exc:
            self._errors += 1
            return Error(f"could not decode a message on input {input_id!r}: {exc}")
        if self._telemetry is not None:
            self._telemetry.on_receive(input_id, event.metadata, latency)
        return event

    def _input_closed(self, input_id: str) -> None:
        self._open.discard(input_id)
        self._lingering.discard(input_id)
        if not self._open and not self._timers and not self._lingering:
            self._inbox.push(None, Stop(STOP_ALL_INPUTS_CLOSED))

    def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or ``None`` when the stream has ended or ``timeout`` passed.

        Args:
            timeout: seconds to wait at most; ``None`` waits until an event
                arrives or the stream ends.

        Example::

            event = node.next(timeout=0.1)   # None after 0.1 s of silence
        """
        if self._ended:
            return None
        if self._telemetry is not None:
            self._telemetry.end_processing()
        got = self._inbox.pop(0)
        if got is None:
            self._backend.idle()  # about to wait: housekeeping (e.g. releases) off the hot path
            got = self._inbox.pop(timeout)
        return None if got is None else self._event(got)

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
        return len(self._inbox) == 0

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
        if self._ended:
            return None
        got = self._inbox.pop(0)
        if got is None:
            self._backend.idle()
            got = await asyncio.to_thread(self._inbox.pop, timeout)
        return None if got is None else self._event(got)

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
        out = self._out_ids.get(output_id)
        if out is None:
            raise self._not_sendable(output_id)
        tag = 0
        if self._out_codecs:
            codec = self._out_codecs.get(output_id)
            if codec is not None:
                data = _encoded_array(codec, output_id, data)
                tag = codec.tag
        array = to_arrow(data)
        plan = plan_value(array)
        if self._telemetry is not None:
            metadata = self._telemetry.on_send(output_id, metadata, plan.size)
        meta = encode_metadata(metadata)
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
            self._backend.send(Outgoing(out, array, plan, meta, self._seq, stamp, tag))

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

    # ------------------------------------------------------------------- logs
    def log(
        self,
        level: str,
        message: str,
        target: str | None = None,
        fields: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        """Write a structured log record of this node.

        The same as logging through Python's ``logging`` (which the node also
        routes into the run's logs), with the fields as extra key-values.

        Args:
            level: ``trace``, ``debug``, ``info``, ``warn``, ``error`` or ``fatal``.
            message: the text.
            target: the logger name (default ``doradus.node.<id>``).
            fields: key-values stored with the record.
            **extra: more key-values, merged into ``fields``.

        Raises:
            ValueError: an unknown level.

        Example::

            node.log("warn", "frame late", fields={"seq": 12}, late_ms=40)
        """
        logger = logging.getLogger(target) if target else self._log
        log_at_level(logger, level, message, {**(fields or {}), **extra})

    def log_error(self, message: str, **fields: Any) -> None:
        """Log ``message`` at error level.

        Example::

            node.log_error("camera unplugged")
        """
        self.log("error", message, **fields)

    def log_warn(self, message: str, **fields: Any) -> None:
        """Log ``message`` at warn level.

        Example::

            node.log_warn("dropping frames")
        """
        self.log("warn", message, **fields)

    def log_info(self, message: str, **fields: Any) -> None:
        """Log ``message`` at info level.

        Example::

            node.log_info("model loaded", seconds=2.5)
        """
        self.log("info", message, **fields)

    def log_debug(self, message: str, **fields: Any) -> None:
        """Log ``message`` at debug level.

        Example::

            node.log_debug("queue depth", depth=3)
        """
        self.log("debug", message, **fields)

    def log_trace(self, message: str, **fields: Any) -> None:
        """Log ``message`` at trace level.

        Example::

            node.log_trace("tick")
        """
        self.log("trace", message, **fields)

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

    def statistics(self) -> dict[str, Any]:
        """Per-input received/dropped and per-output sent counts.

        Example::

            node.statistics()["inputs"]["image"]["dropped"]
        """
        return {
            "inputs": {
                k: {
                    "received": self._inbox.received[k],
                    "dropped": self._inbox.dropped[k],
                    "queued": self._inbox.depth(k),
                }
                for k in self._config["inputs"]
            },
            "outputs": {k: {"sent": self.sent[k], "bytes": self.sent_bytes[k]} for k in self.sent},
            "backend": self._backend.statistics(),
        }

    def close(self) -> None:
        """Stop receiving and close every link (receivers see their inputs close).

        Example::

            node.close()
        """
        self._timer_stop.set()
        self._backend.close()
        self._report_statistics()  # the final counts, for `doradus status` after the node ended
        if self._telemetry is not None:
            self._telemetry.shutdown()
        try:
            self._control.close()
        except OSError:
            pass

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _NodeReceiver:
    """Feeds what the backend receives into the node's inbox."""

    def __init__(self, inbox: Inbox) -> None:
        self._push = inbox.push

    def deliver(self, inputs: tuple[str, ...], entry: tuple[Any, ...]) -> None:
        push = self._push
        for input_id in inputs:
            push(input_id, entry)

    def closed(self, inputs: Sequence[str]) -> None:
        for input_id in inputs:
            self._push(None, InputClosed(input_id))

    def error(self, message: str) -> None:
        self._push(None, Error(message))


def descriptor_text(config: dict[str, Any]) -> str:
    """The dataflow text the node's run started from (its run folder's copy).

    Bounded like every dataflow read; a node started without one (older daemon) reads the
    dataflow file itself.
    """
    from doradus._dataflow.loader import MAX_DATAFLOW_BYTES
    from doradus._files import read_regular_file

    path = config.get("descriptor") or config["dataflow"]
    return read_regular_file(path, limit=MAX_DATAFLOW_BYTES).decode("utf-8")


def _report_at_exit(node: Node) -> None:
    """Send the node's final statistics when the process exits, even without ``close()``."""
    ref = weakref.ref(node)

    def report() -> None:
        alive = ref()
        if alive is not None:
            alive._report_statistics()
            if alive._telemetry is not None:
                alive._telemetry.shutdown()

    def close_network() -> None:
        alive = ref()
        if alive is not None and alive._backend.name != "shm":
            # Network backends hold sessions and threads (some not daemonic) that must end before
            # the interpreter waits for its threads; closing also tells receivers the outputs ended.
            alive._timer_stop.set()
            alive._backend.close()

    atexit.register(report)
    # Runs when the main thread ends, before Python joins the remaining threads (atexit is later).
    register_before_join = getattr(threading, "_register_atexit", None)
    if register_before_join is not None:
        register_before_join(close_network)
    else:
        atexit.register(close_network)


def _make_backend(node_id: str, receiver: _NodeReceiver, config: dict[str, Any]) -> Backend:
    """The node's backend: ``shm`` alone (the fast path), or one per backend its links use."""
    names = config.get("backends") or [config.get("backend", "shm")]
    if list(names) == ["shm"]:
        return get_backend("shm")(node_id, receiver)
    from doradus.backends._mux import MultiBackend

    return MultiBackend(node_id, receiver, {name: get_backend(name) for name in names})


def _encoded_array(codec: Any, output_id: str, data: Any) -> pa.Array:
    """``data`` encoded by the output's codec, as a ``UInt8Array`` over the encoded bytes."""
    try:
        encoded = codec.encode(data)
    except EncodeError as exc:
        raise EncodeError(f"output {output_id!r} ({codec.spec}): {exc}") from exc
    if isinstance(encoded, pa.Buffer):
        return pa.Array.from_buffers(pa.uint8(), encoded.size, [None, encoded])
    return to_arrow(encoded)


def _format_name(tag: int) -> str:
    from doradus.codecs import TAG_NAMES

    return TAG_NAMES.get(tag, f"format #{tag}")


def _decode_input(input_id: str, item: tuple[Any, ...], codec: Any = None) -> Input:
    data, pos, type_len, layout_len, meta_len, stamp, lease, seg_off, flags = item
    tag = (flags & CODEC_MASK) >> CODEC_SHIFT
    expected = 0 if codec is None else codec.tag
    if tag != expected:
        raise DecodeError(
            f"the message is {_format_name(tag)} but input {input_id!r} reads {_format_name(expected)}"
        )
    blob = data[pos : pos + type_len]
    pos += type_len
    layout = data[pos : pos + layout_len]
    pos += layout_len
    metadata: dict[str, Any] = decode_metadata(data[pos : pos + meta_len]) if meta_len else {}
    pos += meta_len
    metadata[TIMESTAMP] = datetime_from_ns(stamp)  # reserved: always this message's send time
    if lease is not None:
        payload = lease.buffer(seg_off, lease.mapping.size - seg_off)
    else:
        payload = pa.py_buffer(data).slice(pos + (-pos % 8))
    kind = KIND_IPC if flags & FLAG_IPC else KIND_BUFFERS
    value = decode_value(kind, blob, layout, payload)
    if codec is None:
        return Input(input_id, value, metadata)
    body = value.buffers()[1]
    if body is None or value.type != pa.uint8():
        raise DecodeError(f"a {codec.name} message on input {input_id!r} carries no bytes")
    return Input(input_id, codec.decode(body.slice(value.offset, len(value))), metadata, codec.name, codec)


def _attach(node_id: str | None) -> tuple[socket.socket, dict[str, Any], list[int]]:
    raw = os.environ.get(ENV_CONFIG)
    if raw:
        env = json.loads(raw)
        # As with dora-rs, a spawned node is who the daemon started, whatever id it passes
        # (hub nodes hard-code one, e.g. dora-echo's Node("echo")).
        return _register(env["control"], env["node_id"], dynamic=False)
    if node_id is None:
        raise NodeError(
            "this process was not started by Doradus. Run it with `doradus run dataflow.yml`, "
            'or declare it `path: dynamic` in the dataflow and call Node("<its id>")'
        )
    return _register(_find_dynamic(node_id), node_id, dynamic=True)


def _find_dynamic(node_id: str) -> str:
    for entry in sorted(runs_dir().glob("*/dynamic.json")):
        try:
            waiting = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        if node_id in waiting.get("nodes", []):
            return str(waiting.get("control") or entry.parent / "control.sock")
    raise NodeError(
        f"no running dataflow has a dynamic node {node_id!r}. Start the dataflow first "
        f"(`doradus run dataflow.yml`), and check that it declares `id: {node_id}` with `path: dynamic`",
        node_id=node_id,
    )


def _register(
    control: str, node_id: str, *, dynamic: bool
) -> tuple[socket.socket, dict[str, Any], list[int]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(control)
    except OSError as exc:
        raise NodeError(f"cannot reach the Doradus daemon at {control}: {exc}", node_id=node_id) from exc
    send_control(sock, {"op": "register", "node_id": node_id, "pid": os.getpid(), "dynamic": dynamic})
    message, fds = recv_control(sock)
    if message is None:
        raise NodeError("the Doradus daemon closed the connection while registering", node_id=node_id)
    if message.get("op") == "error":
        raise NodeError(str(message.get("message")), node_id=node_id)
    config: dict[str, Any] = message["config"]
    return sock, config, fds
