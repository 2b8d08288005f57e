r"""The ``grpc`` backend: frames over one gRPC client stream per link (HTTP/2).

For networks where gRPC is the common ground (service meshes, load
balancers, mTLS-terminating proxies). The service is
``doradus.link.v1.Link/Stream`` (see ``doradus_link.proto`` beside this
module): a **client-streaming** call. A receiving node serves it on its
``listen`` address (default a free port on 127.0.0.1, exposed as
`GrpcBackend.address`); each sending node opens one call per link, whose
first message names the sender and whose later messages each carry one
frame. When the sender closes, it ends the call and the receiver answers
with an ``Ack`` counting the frames it got. One call keeps order (HTTP/2
delivers a stream's messages in order).

Message limits are raised on both sides to ``max_message`` (default 1 GiB,
the option may change it; gRPC's default of 4 MiB would reject the 16 MiB
frames the conformance kit sends). Frames are not fragmented: a frame
larger than ``max_message`` fails the link.

Flow control: `GrpcBackend.send` puts frames on a queue bounded in count
(1024) and bytes (16 MiB, or one larger frame); gRPC's own thread drains it
as HTTP/2 flow control allows, so a slow receiver blocks its senders rather
than filling memory. The sync API streams about 4k messages/s: the backend
for interoperability, not for rate.

Options (`LinkSpec.options`): ``listen`` (inbound), ``connect``,
``connect_retries`` x ``retry_interval`` (`ConnectBound`, default 50 x 0.1 s)
bound how long a sender waits for the receiver (`ConnectError` afterwards;
gRPC retries by itself, its reconnect backoff set to ``retry_interval``),
``max_message``, ``tls`` (`doradus.backends._tls.TlsFiles.for_link`).

TLS: with ``tls`` set, the receiver serves on a secure port with its ``cert``
and ``key`` (and, with ``require_client: true``, demands a client certificate
signed by ``ca``); the sender opens a secure channel that checks the
receiver's certificate against ``ca`` (else gRPC's bundled roots) and
presents its own ``cert``/``key`` when given. The certificate must name the
host the sender connects to (an IP address SAN for ``127.0.0.1``). A channel
that never comes up under TLS is explained by a handshake of Python's own
(`TlsFiles.handshake_problem`), since gRPC only reports a timeout.

The message classes come from ``_doradus_link_pb2.py`` (generated; see the
``.proto`` for the command). The service itself is registered by hand with
``grpc.method_handlers_generic_handler`` and ``channel.stream_unary``, so no
``_pb2_grpc`` module (and its absolute import) is needed. Regenerate with::

    python -m grpc_tools.protoc -I src/doradus/backends \\
        --python_out=/tmp/pb --pyi_out=/tmp/pb src/doradus/backends/doradus_link.proto
    mv /tmp/pb/doradus_link_pb2.py src/doradus/backends/_doradus_link_pb2.py
    mv /tmp/pb/doradus_link_pb2.pyi src/doradus/backends/_doradus_link_pb2.pyi

Example::

    backend = GrpcBackend("camera", receiver)
    backend.open([LinkSpec("detector", "out", ("image",), options={"connect": "127.0.0.1:7000"})], [])
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from doradus._exceptions import ConnectError
from doradus.backends._network import LINK_OPTIONS, ConnectBound, NetLink, NetworkBackend
from doradus.backends._tcp import parse_host_port
from doradus.backends._tls import TlsFiles

SERVICE = "doradus.link.v1.Link"
METHOD = f"/{SERVICE}/Stream"
DEFAULT_MAX_MESSAGE = 1 << 30
QUEUE_FRAMES = 1024
QUEUE_BYTES = 16 << 20
CLOSE_TIMEOUT = 10.0


def _options(max_message: int, interval: float | None = None) -> list[tuple[str, int]]:
    options = [
        ("grpc.max_send_message_length", max_message),
        ("grpc.max_receive_message_length", max_message),
    ]
    if interval is not None:
        backoff = max(1, int(interval * 1000))
        options += [
            ("grpc.initial_reconnect_backoff_ms", backoff),
            ("grpc.min_reconnect_backoff_ms", backoff),
            ("grpc.max_reconnect_backoff_ms", backoff),
        ]
    return options


def _server_credentials(grpc: Any, files: TlsFiles) -> Any:
    """The receiver's TLS credentials: its certificate, and client checking when required."""
    files.server_files("grpc")  # both named, or a TransportError saying so
    return grpc.ssl_server_credentials(
        [(files.read("key", "grpc"), files.read("cert", "grpc"))],
        root_certificates=files.read("ca", "grpc") if files.require_client else None,
        require_client_auth=files.require_client,
    )


def _channel_credentials(grpc: Any, files: TlsFiles) -> Any:
    """The sender's TLS credentials: the roots it checks the receiver with, its own certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=files.read("ca", "grpc"),
        private_key=files.read("key", "grpc"),
        certificate_chain=files.read("cert", "grpc"),
    )


class FramePipe:
    """A queue of frames bounded in count and bytes, read by gRPC's request iterator.

    ``put`` blocks while the pipe is full (one frame larger than the byte
    bound is let through when the pipe is empty); ``finish`` ends the
    iteration after what was queued.

    Example:
        >>> pipe = FramePipe()
        >>> pipe.put(b"ab", lambda: False)
        True
        >>> pipe.finish()
        >>> list(pipe.frames())
        [b'ab']
    """

    def __init__(self, max_frames: int = QUEUE_FRAMES, max_bytes: int = QUEUE_BYTES) -> None:
        self._items: deque[bytes | None] = deque()
        self._bytes = 0
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._cond = threading.Condition()

    def put(self, frame: bytes, broken: Any) -> bool:
        """Queue ``frame``, waiting for room; False (nothing queued) once ``broken()`` is true.

        Example::

            pipe.put(frame, call.done)
        """
        with self._cond:
            while self._items and (
                len(self._items) >= self._max_frames or self._bytes + len(frame) > self._max_bytes
            ):
                if broken():
                    return False
                self._cond.wait(0.2)
            self._items.append(frame)
            self._bytes += len(frame)
            self._cond.notify_all()
            return True

    def finish(self) -> None:
        """End the iteration once everything queued before has been read.

        Example::

            pipe.finish()
        """
        with self._cond:
            self._items.append(None)
            self._cond.notify_all()

    def frames(self) -> Iterator[bytes]:
        """Queued frames, in order, until `finish`.

        Example::

            for frame in pipe.frames(): ...
        """
        while True:
            with self._cond:
                while not self._items:
                    self._cond.wait()
                item = self._items.popleft()
                if item is not None:
                    self._bytes -= len(item)
                self._cond.notify_all()
            if item is None:
                return
            yield item


class GrpcBackend(NetworkBackend):
    """Frames over one client-streaming gRPC call per (sender, receiver) pair.

    Example::

        receiver_side = GrpcBackend("b", receiver)
        receiver_side.open([LinkSpec("a", "in", routes={"out": ["in"]})], [])
        host, port = receiver_side.address
    """

    name = "grpc"
    topics = False
    # grpcio and protobuf are imported when a backend opens, not with this module.
    requires = ("grpc", "google.protobuf")
    options = LINK_OPTIONS | {"max_message", "tls"}

    def __init__(self, node_id: str, receiver: Any) -> None:
        super().__init__(node_id, receiver)
        self._server: Any = None
        self.address: tuple[str, int] | None = None
        """Where this node listens, once open (``None`` without inbound links)."""

    # ------------------------------------------------------------ opening
    def _open_transport(self) -> None:
        if self.in_links:
            self._serve()
        for link in self.out_links:
            self._connect(link)

    def _serve(self) -> None:
        import grpc  # type: ignore[import-untyped]  # grpcio ships no type hints

        from doradus.backends import _doradus_link_pb2 as pb

        options: dict[str, Any] = {}
        for link in self.in_links.values():
            if link.options.get("listen"):
                options = link.options
                break
        tls = next((link.options["tls"] for link in self.in_links.values() if link.options.get("tls")), None)
        files = TlsFiles.for_link(tls, option=self.name)
        listen = str(options.get("listen") or "127.0.0.1:0")
        host, port = parse_host_port(listen)
        max_message = int(options.get("max_message", DEFAULT_MAX_MESSAGE))
        server = grpc.server(
            ThreadPoolExecutor(max_workers=len(self.in_links) + 4, thread_name_prefix="grpc-link"),
            options=_options(max_message),
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Stream": grpc.stream_unary_rpc_method_handler(
                    self._stream,
                    request_deserializer=pb.Frame.FromString,
                    response_serializer=pb.Ack.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        shown = f"[{host}]" if ":" in host else host
        try:
            if files is None:
                bound = server.add_insecure_port(f"{shown}:{port}")
            else:
                bound = server.add_secure_port(f"{shown}:{port}", _server_credentials(grpc, files))
        except Exception as exc:  # grpc raises RuntimeError when it cannot bind
            raise ConnectError(f"cannot listen on {listen}: {exc}") from exc
        if not bound:
            raise ConnectError(f"cannot listen on {listen}")
        server.start()
        self._server = server
        self.address = (host, int(bound))

    def _connect(self, link: NetLink) -> None:
        import grpc

        from doradus.backends import _doradus_link_pb2 as pb

        target = str(link.options.get("connect") or "")
        if not target:
            raise ConnectError(f"link to {link.peer!r} has no `connect` address")
        host, port = parse_host_port(target)
        shown = f"[{host}]" if ":" in host else host
        bound = ConnectBound.from_options(link.options)
        max_message = int(link.options.get("max_message", DEFAULT_MAX_MESSAGE))
        files = TlsFiles.for_link(link.options.get("tls"), option=self.name)
        address, options = f"{shown}:{port}", _options(max_message, bound.interval)
        if files is None:
            channel = grpc.insecure_channel(address, options=options)
        else:
            channel = grpc.secure_channel(address, _channel_credentials(grpc, files), options=options)
        try:
            # gRPC retries by itself every `interval`; wait for as many attempts, plus one connect time.
            grpc.channel_ready_future(channel).result(timeout=bound.seconds + 1.0)
        except grpc.FutureTimeoutError:
            channel.close()
            why = "the channel never became ready"
            problem = files.handshake_problem(host, port, alpn=("h2",)) if files is not None else None
            if problem:
                why += f" ({problem}; check `tls.ca` and that the certificate names {host})"
            raise bound.unreachable(self.node_id, f"{link.peer!r} at {target}", why) from None
        pipe = FramePipe()
        stream = channel.stream_unary(
            METHOD, request_serializer=pb.Frame.SerializeToString, response_deserializer=pb.Ack.FromString
        )
        call = stream.future(self._requests(pipe))
        link.handle = (channel, pipe, call)

    def _requests(self, pipe: FramePipe) -> Iterator[Any]:
        from doradus.backends import _doradus_link_pb2 as pb

        yield pb.Frame(sender=self.node_id)
        for frame in pipe.frames():
            yield pb.Frame(data=frame)

    # ---------------------------------------------------------- receiving
    def _stream(self, requests: Iterator[Any], context: Any) -> Any:
        import grpc

        from doradus.backends import _doradus_link_pb2 as pb

        peer: str | None = None
        count = 0
        try:
            for message in requests:
                if peer is None:
                    peer = message.sender
                    if not peer:
                        context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT, "the first message must name the sender"
                        )
                    continue
                self._frame(peer, message.data)
                count += 1
        except grpc.RpcError:
            pass  # the sender went away (cancelled, broken connection): its inputs close below
        finally:
            if peer:
                self.peer_gone(peer)  # no-op when an END frame already closed its inputs
        return pb.Ack(frames=count)

    # ------------------------------------------------------------ sending
    def _send_link(self, link: NetLink, parts: list[bytes | memoryview]) -> None:
        _channel, pipe, call = link.handle
        if not call.done() and pipe.put(b"".join(parts), call.done):
            return
        self._link_failed(link)
        if not self._closing:
            problem = call.exception() if call.done() else None
            self.receiver.error(f"link to {link.peer!r} broke: {problem}")

    # ------------------------------------------------------------ closing
    def _close_transport(self) -> None:
        for link in self.out_links:
            if link.handle is None:
                continue
            channel, pipe, call = link.handle
            pipe.finish()
            try:
                call.result(timeout=CLOSE_TIMEOUT)  # the receiver read everything sent before
            except Exception:
                call.cancel()
            channel.close()
        if self._server is not None:
            self._server.stop(grace=1.0).wait(5.0)
