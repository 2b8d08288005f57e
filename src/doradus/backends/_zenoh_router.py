"""Zenoh sessions as Doradus opens them (scouting off, explicit endpoints), and a machine's router.

Every Zenoh session of the ``zenoh`` backend comes from `session_config`; a
machine daemon starts one `ZenohRouter` per multi-machine run whose links
cross machines on Zenoh (`ZenohBackend.open_machine_router`). zenoh itself is
imported only when a configuration is built.

TLS (`TlsFiles`, the ``tls`` option): every endpoint must then be a ``tls/``
one (a ``tcp/`` endpoint beside it is refused, never silently clear text);
``ca`` becomes ``transport/link/tls/root_ca_certificate``, ``cert``/``key``
the listening certificate (required when listening), and ``require_client``
turns on Zenoh's mutual TLS (``enable_mtls``, the same ``cert``/``key``
presented when connecting). Zenoh checks that the certificate names the host
connected to.

A machine's router follows the dataflow's ``zenoh`` settings (`router_tls`): with
``tls`` it listens and connects on ``tls/`` endpoints with the same files as the
nodes, and `open_machine_router` checks, before any node starts, the TLS handshake
its nodes will make and the one it makes with every other machine's router, so
that a wrong ``ca`` or certificate fails the start with the reason instead of a
timeout.

Example:
    >>> json.loads(session_config(mode="client").get_json("mode"))
    'client'
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from doradus._exceptions import ConnectError, TransportError
from doradus.backends._tcp import parse_host_port
from doradus.backends._tls import PROBE_TIMEOUT, TlsFiles

if TYPE_CHECKING:
    import zenoh

DEFAULT_LISTEN = ("tcp/127.0.0.1:0",)
PEER_WAIT = 5.0
"""Seconds a machine router waits for another machine's router to accept connections, to check TLS."""
_ROUTER = "a machine's Zenoh router (it carries the links crossing machines)"


def session_config(
    mode: str = "peer",
    listen: Sequence[str] = DEFAULT_LISTEN,
    connect: Sequence[str] = (),
    *,
    shm: bool = True,
    connect_timeout: float | None = None,
    tls: TlsFiles | None = None,
) -> zenoh.Config:
    """A Zenoh configuration with scouting off and explicit endpoints.

    Multicast scouting and gossip are disabled; ``listen`` replaces Zenoh's
    all-interfaces default. With ``connect_timeout``, opening the session
    fails unless a ``connect`` endpoint answers within that many seconds.
    With ``tls``, see the module documentation.

    Raises:
        TransportError: ``tls`` is given with a non-``tls/`` endpoint, or without the
            ``cert``/``key`` a listening session needs.

    Example:
        >>> config = session_config(listen=["tcp/127.0.0.1:0"])
        >>> json.loads(config.get_json("scouting/multicast/enabled"))
        False
    """
    import zenoh

    config = zenoh.Config()
    config.insert_json5("mode", json.dumps(mode))
    config.insert_json5("scouting/multicast/enabled", "false")
    config.insert_json5("scouting/gossip/enabled", "false")
    config.insert_json5("listen/endpoints", json.dumps(list(listen)))
    config.insert_json5("connect/endpoints", json.dumps(list(connect)))
    config.insert_json5("transport/shared_memory/enabled", json.dumps(bool(shm)))
    if connect and connect_timeout is not None:
        config.insert_json5("connect/timeout_ms", str(max(1, int(connect_timeout * 1000))))
        config.insert_json5("connect/exit_on_failure", "true")
    if tls is not None:
        _insert_tls(config, tls, listen, connect)
    return config


def _insert_tls(config: zenoh.Config, tls: TlsFiles, listen: Sequence[str], connect: Sequence[str]) -> None:
    clear = [e for e in (*listen, *connect) if not e.startswith("tls/")]
    if clear:
        raise TransportError(
            f"zenoh option `tls` needs `tls/` endpoints, not {clear}: write e.g. `tls/127.0.0.1:7447`"
        )
    settings: dict[str, object] = {}
    if tls.ca:
        settings["root_ca_certificate"] = tls.ca
    if listen:
        settings["listen_certificate"], settings["listen_private_key"] = tls.server_files("zenoh")
    if tls.require_client:
        settings["enable_mtls"] = True
        if tls.cert and tls.key:
            settings["connect_certificate"], settings["connect_private_key"] = tls.cert, tls.key
    for key, value in settings.items():
        config.insert_json5(f"transport/link/tls/{key}", json.dumps(value))


def open_session(config: zenoh.Config, what: str) -> zenoh.Session:
    """Open a Zenoh session; its failure as `ConnectError` saying ``what`` was being done.

    Example::

        session = open_session(session_config(), "node 'a' could not open its Zenoh session")
    """
    import zenoh

    try:
        return zenoh.open(config)
    except zenoh.ZError as exc:
        raise ConnectError(f"{what}: {exc}") from exc


class ZenohRouter:
    """A Zenoh router (mode ``router``, scouting off) for one machine; made by `open_router`.

    Nodes of the machine connect to it (in Zenoh mode ``client``); routers of different machines
    connect to each other. ``session`` is the Zenoh session; `close` stops it.

    Example::

        router = open_router(["tcp/127.0.0.1:7447"], [])
        ...
        router.close()
    """

    def __init__(self, session: zenoh.Session, listen: Sequence[str], connect: Sequence[str]) -> None:
        self.session = session
        self.listen = list(listen)
        self.connect = list(connect)

    def close(self) -> None:
        """Stop the router (idempotent).

        Example::

            router.close()
        """
        if not self.session.is_closed():
            self.session.close()  # type: ignore[no-untyped-call]  # the stubs leave it unannotated

    def __enter__(self) -> ZenohRouter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_router(
    listen: Sequence[str], connect: Sequence[str] = (), *, shm: bool = True, tls: TlsFiles | None = None
) -> ZenohRouter:
    """Start a Zenoh router in this process: the meeting point of one machine's nodes.

    ``listen`` are its endpoints (explicit: never all interfaces unless
    given); ``connect`` the routers of other machines (retried in the
    background until they answer). Scouting is off. With ``tls``, every endpoint is a
    ``tls/`` one (`session_config`).

    Raises:
        ConnectError: the router cannot start (an endpoint is taken or invalid).

    Example::

        with open_router(["tcp/127.0.0.1:7447"], ["tcp/10.0.0.2:7447"]) as router:
            run_dataflow()
    """
    config = session_config("router", listen, connect, shm=shm, tls=tls)
    session = open_session(config, f"cannot start a Zenoh router on {list(listen)}")
    return ZenohRouter(session, listen, connect)


def endpoint_address(endpoint: str) -> tuple[str, int]:
    """The host and port of a Zenoh ``tcp/`` or ``tls/`` endpoint.

    Example:
        >>> endpoint_address("tls/[::1]:7447#iface=lo")
        ('::1', 7447)
    """
    address = endpoint.partition("/")[2].split("#")[0].split("?")[0]
    return parse_host_port(address)


def tls_problem(tls: TlsFiles | None, connect: Sequence[str]) -> str | None:
    """Why the first ``connect`` endpoint that refuses a TLS handshake under ``tls`` does; None if none.

    Zenoh only reports that a connection timed out: this finds the reason.

    Example:
        >>> tls_problem(None, ["tls/127.0.0.1:7447"]) is None
        True
    """
    if tls is None:
        return None
    for endpoint in connect:
        problem = tls.handshake_problem(*endpoint_address(endpoint))
        if problem:
            return problem
    return None


def router_tls(options: Mapping[str, Any] | None, folder: str | os.PathLike[str] | None) -> TlsFiles | None:
    """The TLS files of a machine's router: the ``tls`` of the dataflow's ``zenoh`` settings, checked.

    Relative paths start from ``folder`` (the dataflow file's folder, where nodes run). The
    router listens, so ``cert`` and ``key`` are required; every file must read as PEM.

    Raises:
        TransportError: naming the option or file at fault.

    Example:
        >>> router_tls({}, "/srv/flow") is None
        True
        >>> router_tls({"tls": {"ca": "ca.pem"}}, "/srv/flow")
        Traceback (most recent call last):
        ...
        doradus.TransportError: zenoh option `tls` needs `cert` and `key` on a machine's Zenoh router...
    """
    tls = TlsFiles.for_link((options or {}).get("tls"), option="zenoh")
    if tls is None:
        return None
    tls = tls.under(folder)
    tls.server_files("zenoh", listener=_ROUTER)
    tls.check("zenoh")
    return tls


def open_machine_router(endpoint: str, peers: Sequence[str], tls: TlsFiles | None) -> ZenohRouter:
    """This machine's router (`open_router`); with ``tls``, checked as its nodes and peers will see it.

    With ``tls``: a TLS handshake with the router itself (what every node of the machine
    will do), and one with each of ``peers`` that accepts connections within `PEER_WAIT`
    seconds (one still away is left to Zenoh, which keeps trying).

    Raises:
        ConnectError: the router cannot start, or a handshake fails: the reason and the fix.

    Example::

        router = open_machine_router("tls/10.0.0.1:7447", ["tls/10.0.0.2:7447"], TlsFiles(...))
    """
    router = open_router([endpoint], peers, tls=tls)
    problem = None if tls is None else _router_tls_problem(tls, endpoint, peers)
    if problem is not None:
        router.close()
        raise ConnectError(problem)
    return router


def _router_tls_problem(tls: TlsFiles, endpoint: str, peers: Sequence[str]) -> str | None:
    with ThreadPoolExecutor(max_workers=1 + len(peers), thread_name_prefix="tls-probe") as pool:
        own = pool.submit(tls_problem, tls, [endpoint])
        others = [pool.submit(_peer_problem, tls, peer) for peer in peers]
    problem = own.result()
    if problem is not None:
        host = endpoint_address(endpoint)[0]
        return (
            f"this machine's Zenoh router at {endpoint} fails the TLS check its nodes make ({problem}); "
            f"fix `communication.zenoh.tls`: `ca` must have signed `cert`, and `cert` must name this "
            f"machine's address {host} (an IP address or DNS subject alternative name)"
        )
    for peer, probe in zip(peers, others, strict=True):
        problem = probe.result()
        if problem is not None:
            return (
                f"this machine's Zenoh router cannot reach another machine's at {peer} over TLS "
                f"({problem}); fix `communication.zenoh.tls` on both machines: each machine's `ca` must "
                "have signed the other's `cert` (which must name its machine's address)"
            )
    return None


def _peer_problem(tls: TlsFiles, endpoint: str) -> str | None:
    """The TLS problem of another machine's router, once it accepts connections (None if it never does)."""
    host, port = endpoint_address(endpoint)
    deadline = time.monotonic() + PEER_WAIT
    while True:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT).close()
            break
        except OSError:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
    return tls.handshake_problem(host, port)
