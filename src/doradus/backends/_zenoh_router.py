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

Example:
    >>> json.loads(session_config(mode="client").get_json("mode"))
    'client'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from doradus._exceptions import ConnectError, TransportError

if TYPE_CHECKING:
    import zenoh

    from doradus.backends._tls import TlsFiles

DEFAULT_LISTEN = ("tcp/127.0.0.1:0",)


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
            f"zenoh option `tls` needs `tls/` endpoints, not {clear}: write e.g. `tls/127.0.0.1:7447` "
            "(a machine's Zenoh router does not offer TLS)"
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
