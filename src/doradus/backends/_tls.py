"""The ``tls`` option of the ``redis``, ``mqtt``, ``grpc`` and ``zenoh`` backends: which files verify whom.

Brokers (``redis``, ``mqtt``): TLS itself is on when the URL's scheme says so (``rediss://``,
``mqtts://``); the ``tls`` option only names files: ``ca`` — the certificate(s) the server's
is checked against (a private CA, or a self-signed server's own certificate; absent: the
system's CAs) — and ``cert`` with ``key`` — a client certificate, for brokers that require
one. A ``tls`` option on a URL without TLS is an error rather than a silently clear-text link.

Links (``grpc``, ``zenoh``; `TlsFiles.for_link`): the ``tls`` option itself turns TLS on.
``cert`` and ``key`` are then also the listening side's certificate, ``ca`` checks the
other side's, and ``require_client: true`` makes the listening side demand a client
certificate signed by ``ca`` (mutual TLS). Verification is never turned off.

Example:
    >>> TlsFiles.from_option({"ca": "ca.pem"}, url="rediss://h:6380/0", option="redis")
    TlsFiles(ca='ca.pem', cert=None, key=None, require_client=False)
    >>> TlsFiles.from_option(None, url="redis://h:6379/0", option="redis") is None
    True
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from doradus._exceptions import TransportError
from doradus._secrets import redact_url

TLS_SCHEMES = frozenset({"rediss", "mqtts", "ssl"})
"""URL schemes that mean TLS (``ssl://`` is paho's spelling of ``mqtts://``)."""
_KEYS = ("ca", "cert", "key")
_LINK_KEYS = (*_KEYS, "require_client")
PROBE_TIMEOUT = 3.0
"""Seconds `handshake_problem` gives a diagnostic TLS handshake."""
AFTER_HANDSHAKE = 0.5
"""Seconds `handshake_problem` waits after the handshake for the server's refusal."""
_CLIENT_HINT = " (a server that wants a client certificate needs `tls.cert` and `tls.key`)"


@dataclass(frozen=True)
class TlsFiles:
    """The files of a TLS client connection; see the module documentation.

    Example:
        >>> TlsFiles().context().verify_mode == ssl.CERT_REQUIRED
        True
    """

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    require_client: bool = False

    @classmethod
    def from_option(cls, tls: Any, *, url: str, option: str) -> TlsFiles | None:
        """The files the ``tls`` option names, or None when ``url`` does not use TLS.

        Args:
            tls: the option's value: absent (None), ``true``, or a map of ``ca``, ``cert``, ``key``.
            url: the broker's URL, whose scheme turns TLS on.
            option: the backend's name, for messages.

        Raises:
            TransportError: ``tls`` is given for a URL without TLS, or is not a map of those keys.

        Example:
            >>> TlsFiles.from_option(True, url="mqtts://broker", option="mqtt")
            TlsFiles(ca=None, cert=None, key=None, require_client=False)
        """
        secure = urlsplit(url).scheme in TLS_SCHEMES
        if tls is None or tls is False:
            return cls() if secure else None
        if not secure:
            raise TransportError(
                f"{option} option `tls` needs a URL with TLS ({option}s://…), not {redact_url(url)!r}"
            )
        return cls._parse(tls, option, _KEYS)

    @classmethod
    def for_link(cls, tls: Any, *, option: str) -> TlsFiles | None:
        """The files of a link's ``tls`` option (``grpc``, ``zenoh``), or None when TLS is off.

        Args:
            tls: the option's value: absent (None) or ``false`` (off), ``true``, or a map of
                ``ca``, ``cert``, ``key``, ``require_client``.
            option: the backend's name, for messages.

        Raises:
            TransportError: ``tls`` is not a map of those keys, or gives a key without its cert.

        Example:
            >>> TlsFiles.for_link({"ca": "ca.pem", "require_client": True}, option="grpc")
            TlsFiles(ca='ca.pem', cert=None, key=None, require_client=True)
            >>> TlsFiles.for_link(None, option="grpc") is None
            True
        """
        if tls is None or tls is False:
            return None
        files = cls._parse(tls, option, _LINK_KEYS)
        if files.cert and not files.key:
            raise TransportError(f"{option} option `tls` gives a `cert` without its `key`")
        return files

    @classmethod
    def _parse(cls, tls: Any, option: str, keys: tuple[str, ...]) -> TlsFiles:
        if tls is True:
            return cls()
        if not isinstance(tls, dict) or set(tls) - set(keys):
            raise TransportError(f"{option} option `tls` must be true or a map of {', '.join(keys)}")
        files = {k: str(tls[k]) for k in _KEYS if tls.get(k)}
        if "key" in files and "cert" not in files:
            raise TransportError(f"{option} option `tls` gives a `key` without its `cert`")
        require_client = tls.get("require_client", False)
        if not isinstance(require_client, bool):
            raise TransportError(f"{option} option `tls`: `require_client` must be true or false")
        if require_client and "ca" not in files:
            raise TransportError(
                f"{option} option `tls`: `require_client` needs a `ca` to check client certificates"
            )
        return cls(**files, require_client=require_client)

    def server_files(self, option: str, *, listener: str = "a node that listens") -> tuple[str, str]:
        """The listening side's certificate and key.

        Args:
            option: the backend's name, for messages.
            listener: who listens, for messages.

        Raises:
            TransportError: the option names no ``cert`` and ``key``.

        Example:
            >>> TlsFiles(cert="c.pem", key="k.pem").server_files("grpc")
            ('c.pem', 'k.pem')
        """
        if not self.cert or not self.key:
            raise TransportError(
                f"{option} option `tls` needs `cert` and `key` on {listener} "
                "(its server certificate and private key)"
            )
        return self.cert, self.key

    def under(self, folder: str | os.PathLike[str] | None) -> TlsFiles:
        """These files with relative paths taken from ``folder`` (absolute ones kept).

        Nodes run in the dataflow file's folder, where their relative paths start; code that
        runs elsewhere (a machine daemon) reads the same files through this.

        Example:
            >>> TlsFiles(ca="ca.pem", cert="/etc/c.pem", key="/etc/k.pem").under("/srv/flow")
            TlsFiles(ca='/srv/flow/ca.pem', cert='/etc/c.pem', key='/etc/k.pem', require_client=False)
        """
        if folder is None:
            return self

        def place(path: str | None) -> str | None:
            return None if path is None else os.path.join(folder, path)

        return replace(self, ca=place(self.ca), cert=place(self.cert), key=place(self.key))

    def check(self, option: str) -> None:
        """Check that each named file can be read and holds what it should, before anything uses it.

        ``ca`` must hold PEM certificates; ``cert`` and ``key`` a PEM certificate and its
        private key.

        Raises:
            TransportError: naming the first file that fails, and why.

        Example:
            >>> TlsFiles(ca="/no/such/ca.pem").check("zenoh")
            Traceback (most recent call last):
            ...
            doradus.TransportError: zenoh option `tls`: cannot read `ca` file '/no/such/ca.pem': ...
        """
        for name in _KEYS:
            self.read(name, option)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.ca:
            try:
                context.load_verify_locations(cafile=self.ca)
            except ssl.SSLError as exc:
                raise TransportError(
                    f"{option} option `tls`: `ca` file {self.ca!r} holds no PEM certificate: {exc}"
                ) from exc
        if self.cert:
            try:
                context.load_cert_chain(self.cert, self.key)
            except ssl.SSLError as exc:
                raise TransportError(
                    f"{option} option `tls`: `cert` file {self.cert!r} and `key` file {self.key!r} "
                    f"are not a PEM certificate and its private key: {exc}"
                ) from exc

    def read(self, name: str, option: str) -> bytes | None:
        """The PEM bytes of the file named by field ``name`` (``ca``, ``cert``, ``key``), None if unset.

        Raises:
            TransportError: the file cannot be read.

        Example:
            >>> TlsFiles().read("ca", "grpc") is None
            True
        """
        path = getattr(self, name)
        if not path:
            return None
        try:
            with open(path, "rb") as file:
                return file.read()
        except OSError as exc:
            raise TransportError(f"{option} option `tls`: cannot read `{name}` file {path!r}: {exc}") from exc

    def context(self) -> ssl.SSLContext:
        """A client context that verifies the server (against ``ca``, else the system's CAs).

        Raises:
            OSError: a file cannot be read (``ssl.SSLError`` for one that is not PEM).

        Example:
            >>> TlsFiles().context().check_hostname
            True
        """
        context = ssl.create_default_context(cafile=self.ca)
        if self.cert:
            context.load_cert_chain(self.cert, self.key)
        return context

    def handshake_problem(
        self, host: str, port: int, *, alpn: tuple[str, ...] = (), timeout: float = PROBE_TIMEOUT
    ) -> str | None:
        """Why a TLS handshake with ``host:port`` fails under these files; None when it succeeds.

        Used to explain a link that never came up (gRPC and Zenoh only say that it timed
        out). A server that is not reachable at all gives the socket's error. ``alpn``: the
        protocols to offer (a gRPC server closes a connection that does not offer ``h2``).

        Example::

            files.handshake_problem("127.0.0.1", 7000)
            # 'TLS handshake with 127.0.0.1:7000 failed: [SSL: CERTIFICATE_VERIFY_FAILED] ...'
        """
        import socket

        shaken = False
        try:
            context = self.context()
            if alpn:
                context.set_alpn_protocols(list(alpn))
            with (
                socket.create_connection((host, port), timeout=timeout) as raw,
                context.wrap_socket(raw, server_hostname=host) as wrapped,
            ):
                wrapped.do_handshake()
                shaken = True
                # TLS 1.3: a server refuses a client certificate only after the client's handshake.
                wrapped.settimeout(min(timeout, AFTER_HANDSHAKE))
                if wrapped.recv(1) == b"":
                    return f"{host}:{port} closed the TLS connection after the handshake{_CLIENT_HINT}"
        except TimeoutError:
            return None  # nothing refused: a server waiting for the client to speak first
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            hint = _CLIENT_HINT if shaken else ""
            return f"TLS handshake with {host}:{port} failed: {exc}{hint}"
        return None
