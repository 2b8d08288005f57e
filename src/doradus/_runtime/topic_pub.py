"""``doradus topic pub``: a message sent to an output's receivers as if its node had sent it.

The run's supervisor keeps, per node published as, one ``shm`` backend of its own
(`Publisher`): an out link to each receiver of the output on this machine, made at the first
``pub`` that reaches it and handed to the receiver like a restarted sender's (``peer_links``,
under the name ``NODE (doradus topic pub)``). The receiver maps that link's messages to the
same inputs as the node's own, so its code sees an ordinary `Input` on them. The link stays
for the run (a receiver that restarts gets a new one at the next ``pub``) and is ``held``:
its end never closes an input.

What it carries: the value (JSON made Arrow: a list is an array, anything else an array of one
item; or, for an output in another data format, the JSON encoded by that format's codec),
the metadata given (plus ``timestamp``, the send time, as every message), a sequence number of
its own. What it does not reach, said in the answer: receivers on other machines, receivers
whose links use other backends than ``shm``, inputs with ``queue_policy: backpressure`` (their
credits flow on the node's own link), receivers not running.

Example::

    publisher = Publisher(state)
    publisher.publish({"op": "pub", "node": "cam", "output": "image", "value": [1, 2],
                       "metadata": {}})["reached"]    # ['det/frames']
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from doradus._exceptions import CodecError, DoradusError, MetadataError
from doradus._runtime.links import _links_of, _socket_pair
from doradus._runtime.state import RunState
from doradus._runtime.topic_facts import TAP_BACKEND, check_output, node_backends
from doradus._runtime.topic_messages import Missed, Published, PubRequest, TopicError
from doradus._wire.control import PeerLinksMessage, send_control
from doradus._wire.node_config import LinkConfig

if TYPE_CHECKING:
    import pyarrow as pa

    from doradus.backends import Backend

PUB_PEER = "{node} (doradus topic pub)"
"""The name a receiver knows an injected link by."""


class _Quiet:
    """The receiver of a publishing backend: it sends only (nothing is ever delivered to it)."""

    def deliver(self, inputs: tuple[str, ...], entry: tuple[Any, ...]) -> None:
        """Nothing comes in on out links."""

    def closed(self, inputs: Any) -> None:
        """Nothing to close."""

    def error(self, message: str) -> None:
        """Nothing to report."""

    def timed_out(self, inputs: Any) -> None:
        """No backpressure inputs are linked."""

    def dropped(self, inputs: Any, count: int) -> None:
        """Nothing comes in to drop."""


class _Sender:
    """One node's stand-in: its backend, the links it has made, its sequence numbers."""

    def __init__(self, node_id: str) -> None:
        from doradus.backends import get_backend

        self.backend: Backend = get_backend(TAP_BACKEND)(PUB_PEER.format(node=node_id), _Quiet())
        self.backend.start()
        self.wired: dict[tuple[str, str], int | None] = {}
        """(receiver, output) → the receiver's process id when its link was made."""
        self.seq = 0


class Publisher:
    """Sends ``pub`` messages of one run (see the module documentation). Thread-safe.

    Example::

        publisher = Publisher(state)
        publisher.close()
    """

    def __init__(self, state: RunState) -> None:
        self._state = state
        self._senders: dict[str, _Sender] = {}
        self._lock = threading.Lock()

    def publish(self, request: PubRequest) -> Published:
        """Send one message to the receivers of ``request``'s output here; say which it reached.

        Raises:
            TopicError: no such node or output, a value or metadata that cannot be sent, or no
                receiver reachable here.
        """
        node_id, output = str(request["node"]), str(request["output"])
        with self._state.lock:
            spec = check_output(self._state, node_id, output)
            fmt = spec.output_formats.get(output)
        array, tag = encode_value(request.get("value"), fmt, request.get("arrow_type"))
        with self._lock:
            sender = self._senders.get(node_id)
            if sender is None:
                sender = self._senders[node_id] = _Sender(node_id)
            with self._state.lock:
                reached, missed = self._wire(sender, node_id, output)
            if not reached:
                why = "; ".join(f"{m['input']}: {m['why']}" for m in missed) or "the output has no subscriber"
                raise TopicError(f"no receiver of {node_id}/{output} can be reached here ({why})", None)
            _send(sender, output, array, tag, request.get("metadata") or {})
        return {"op": "published", "topic": f"{node_id}/{output}", "reached": reached, "missed": missed}

    def _wire(self, sender: _Sender, node_id: str, output: str) -> tuple[list[str], list[Missed]]:
        """Make the links still missing to the output's receivers here (caller holds the run's lock)."""
        state = self._state
        reached: list[str] = []
        missed: list[Missed] = []
        for (source, receiver), link in _links_of(state.dataflow).items():
            inputs = link.routes.get(output, []) if source == node_id else []
            if not inputs:
                continue
            spec = state.specs[receiver]
            open_inputs = [i for i in inputs if spec.inputs[i].queue_policy != "backpressure"]
            for input_id in inputs:
                if input_id not in open_inputs:
                    missed.append(
                        {"input": f"{receiver}/{input_id}", "why": "its queue_policy is backpressure"}
                    )
            why = _unreachable(state, receiver)
            if why is not None:
                missed.extend({"input": f"{receiver}/{i}", "why": why} for i in open_inputs)
                continue
            if open_inputs:
                self._link(sender, node_id, receiver, output, open_inputs)
                reached.extend(f"{receiver}/{i}" for i in open_inputs)
        return reached, missed

    def _link(self, sender: _Sender, node_id: str, receiver: str, output: str, inputs: list[str]) -> None:
        """A link from ``sender`` to ``receiver`` for ``output``, unless its process has one already."""
        from doradus.backends import LinkSpec

        proc = self._state.nodes[receiver]
        if sender.wired.get((receiver, output)) == proc.pid:
            return
        ours, theirs = _socket_pair()
        peer = PUB_PEER.format(node=node_id)
        link: LinkConfig = {
            "peer": peer,
            "dir": "in",
            "routes": {output: inputs},
            "backend": TAP_BACKEND,
            "held": True,  # the end of an injected link closes no input
        }
        message: PeerLinksMessage = {"op": "peer_links", "peer": peer, "links": [link]}
        try:
            assert proc.conn is not None  # `_unreachable` checked it
            send_control(proc.conn, message, [theirs.fileno()])
        except OSError as exc:
            ours.close()
            raise TopicError(f"could not reach node {receiver!r}: {exc}", "try again") from exc
        finally:
            theirs.close()
        sender.backend.open([LinkSpec(receiver, "out", (output,))], [ours.detach()])
        sender.wired[(receiver, output)] = proc.pid

    def close(self) -> None:
        """Close every link the publisher made (receivers keep their inputs open: the links are held)."""
        with self._lock:
            for sender in self._senders.values():
                sender.backend.close()
            self._senders.clear()


def _unreachable(state: RunState, receiver: str) -> str | None:
    """Why a ``pub`` cannot reach node ``receiver`` from here; None if it can (the run's lock held)."""
    proc = state.nodes.get(receiver)
    if proc is None:
        return "it runs on another machine"
    if proc.exited or proc.conn is None or proc.restarting or not state.started:
        return "it is not running"
    others = node_backends(state, receiver) - {TAP_BACKEND}
    if others:
        return f"its links use {', '.join(sorted(others))}, and injected messages ride {TAP_BACKEND}"
    return None


def _send(sender: _Sender, output: str, array: pa.Array, tag: int, metadata: dict[str, Any]) -> None:
    from doradus._wire.metadata import encode_metadata
    from doradus._wire.values import plan_value
    from doradus.backends import Outgoing

    try:
        meta = encode_metadata(metadata)
    except MetadataError as exc:
        raise TopicError(
            f"the metadata cannot travel: {exc}", "give JSON numbers, strings, booleans or lists"
        ) from exc
    sender.seq += 1
    message = Outgoing(output.encode(), array, plan_value(array), meta, sender.seq, time.time_ns(), tag)
    try:
        sender.backend.send(message)
    except DoradusError as exc:
        raise TopicError(f"could not send the message: {exc}", None) from exc


def encode_value(value: Any, fmt: Any, arrow_type: str | None = None) -> tuple[pa.Array, int]:
    """A JSON value as the output's data format carries it: the array sent, and the format's tag.

    In Arrow, a list is an array and anything else an array of one item (``arrow_type``, a
    type's name such as ``int32``, converts it); in another format, the codec encodes the
    value and the array holds its bytes.

    Raises:
        TopicError: the value does not fit.

    Example:
        >>> array, tag = encode_value([1, 2], None, "int8")
        >>> array.type, array.to_pylist(), tag
        (DataType(int8), [1, 2], 0)
        >>> encode_value({"x": 1}, None)[0].to_pylist()
        [{'x': 1}]
    """
    import pyarrow as pa

    from doradus._wire.values import to_arrow

    if fmt is not None and getattr(fmt, "name", "arrow") != "arrow":
        from doradus.codecs import get_codec

        try:
            codec = get_codec(fmt)
            encoded = codec.encode(value)
        except (CodecError, ImportError, KeyError) as exc:
            raise TopicError(f"the value is not a {fmt}: {exc}", "give JSON that fits the schema") from exc
        if isinstance(encoded, pa.Buffer):
            return pa.Array.from_buffers(pa.uint8(), encoded.size, [None, encoded]), codec.tag
        return to_arrow(encoded), codec.tag
    items = value if isinstance(value, list) else [value]
    try:
        type_ = None if not arrow_type else pa.type_for_alias(arrow_type)
        return pa.array(items, type=type_), 0
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise TopicError(
            f"the value cannot be made an Arrow array: {exc}", "check the JSON and --type"
        ) from exc
