"""The ``tls`` option of the broker backends (``redis``, ``mqtt``): which files verify whom.

TLS itself is on when the URL's scheme says so (``rediss://``, ``mqtts://``); the ``tls``
option only names files: ``ca`` — the certificate(s) the server's is checked against (a
private CA, or a self-signed server's own certificate; absent: the system's CAs) — and
``cert`` with ``key`` — a client certificate, for brokers that require one. Verification is
never turned off, and a ``tls`` option on a URL without TLS is an error rather than a
silently clear-text link.

Example:
    >>> TlsFiles.from_option({"ca": "ca.pem"}, url="rediss://h:6380/0", option="redis")
    TlsFiles(ca='ca.pem', cert=None, key=None)
    >>> TlsFiles.from_option(None, url="redis://h:6379/0", option="redis") is None
    True
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from doradus._exceptions import TransportError
from doradus._secrets import redact_url

TLS_SCHEMES = frozenset({"rediss", "mqtts", "ssl"})
"""URL schemes that mean TLS (``ssl://`` is paho's spelling of ``mqtts://``)."""
_KEYS = ("ca", "cert", "key")


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
            TlsFiles(ca=None, cert=None, key=None)
        """
        secure = urlsplit(url).scheme in TLS_SCHEMES
        if tls is None or tls is False:
            return cls() if secure else None
        if not secure:
            raise TransportError(
                f"{option} option `tls` needs a URL with TLS ({option}s://…), not {redact_url(url)!r}"
            )
        if tls is True:
            return cls()
        if not isinstance(tls, dict) or set(tls) - set(_KEYS):
            raise TransportError(f"{option} option `tls` must be true or a map of {', '.join(_KEYS)}")
        files = {k: str(tls[k]) for k in _KEYS if tls.get(k)}
        if "key" in files and "cert" not in files:
            raise TransportError(f"{option} option `tls` gives a `key` without its `cert`")
        return cls(**files)

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
