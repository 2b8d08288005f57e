"""Who may use the coordinator: the API token, the daemons' secret, and the files holding them.

Whoever can start a dataflow can run any program as the coordinator's user (a node's
``path`` is a command), so the control API is guarded like a shell (docs/security.md):

- **The API token.** Every HTTP request and WebSocket must send ``Authorization: Bearer
  <token>`` (`TokenGuard`). ``doradus up`` and ``doradus coordinator`` make one by default, even
  on loopback, into `token_path` (mode 0600 in the user's 0700 runtime folder), where every
  client command of the same user finds it. ``--no-token`` opts out, on loopback only.
- **The daemons' secret.** A daemon's ``register`` must carry ``secret``: the coordinator's
  daemon key (fresh at each start, in `daemon_key_path`, read by daemons of the same user on
  the same machine) or the API token (daemons on other machines). It holds even with
  ``--no-token``, so no other local user can take a daemon's seat.

Example:
    >>> token_path(6300).name, daemon_key_path(6300).name
    ('coordinator-6300.token', 'coordinator-6300.daemon-key')
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from doradus._files import read_regular_file
from doradus._paths import runtime_base

if TYPE_CHECKING:  # the CLI reads tokens on every command: starlette loads with the server only
    from starlette.types import ASGIApp, Receive, Scope, Send

SECRET_MAX_BYTES = 4096
"""Token files hold one line; anything longer is not a token file."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("192.0.2.7")
        (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_secret() -> str:
    """A fresh random secret: 32 bytes, URL-safe text.

    Example:
        >>> len(new_secret()) >= 43
        True
    """
    return secrets.token_urlsafe(32)


def token_path(port: int) -> Path:
    """Where the API token of the coordinator on ``port`` is kept when Doradus made it.

    Example:
        >>> token_path(6300).parent == runtime_base()
        True
    """
    return runtime_base() / f"coordinator-{port}.token"


def daemon_key_path(port: int) -> Path:
    """Where the coordinator on ``port`` keeps the secret daemons of this machine prove themselves with.

    Example:
        >>> daemon_key_path(6300).name
        'coordinator-6300.daemon-key'
    """
    return runtime_base() / f"coordinator-{port}.daemon-key"


def write_secret(path: Path, value: str) -> Path:
    """Write ``value`` to ``path`` with mode 0600, atomically (never seen half-written).

    Example:
        >>> import tempfile
        >>> file = write_secret(Path(tempfile.mkdtemp()) / "t", "s3cret")
        >>> oct(file.stat().st_mode & 0o777), read_secret(file)
        ('0o600', 's3cret')
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(value + "\n")
    os.replace(temporary, path)
    return path


def read_secret(path: str | os.PathLike[str]) -> str | None:
    """The secret in a token or key file (None when there is no such file).

    Raises:
        OSError: It cannot be read, is not a regular file, or is too large to be one.

    Example:
        >>> read_secret("/nonexistent/token") is None
        True
    """
    try:
        data = read_regular_file(path, limit=SECRET_MAX_BYTES)
    except FileNotFoundError:
        return None
    return data.decode(errors="replace").strip() or None


def remove_secret(path: Path, value: str) -> None:
    """Delete ``path`` if it still holds ``value`` (not when a later coordinator replaced it).

    Example:
        >>> import tempfile
        >>> file = write_secret(Path(tempfile.mkdtemp()) / "t", "a")
        >>> remove_secret(file, "b"); file.exists(), remove_secret(file, "a"), file.exists()
        (True, None, False)
    """
    try:
        if read_secret(path) == value:
            path.unlink()
    except OSError:
        pass


def matches(given: str | None, *expected: str | None) -> bool:
    """Whether ``given`` equals one of ``expected`` (compared in constant time).

    Example:
        >>> matches("a", None, "a"), matches(None, "a"), matches("", None)
        (True, False, False)
    """
    if not given:
        return False
    found = False
    for value in expected:
        if value:
            found |= hmac.compare_digest(given.encode(), value.encode())
    return found


class TokenGuard:
    """ASGI middleware: every HTTP request and WebSocket must carry ``Bearer <token>``.

    A request without it gets 401 before its body is read; a WebSocket is refused at
    the handshake (HTTP 403).

    Example::

        app.add_middleware(TokenGuard, token=token)
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong token"})
                    return
                body = (
                    b'{"detail":{"error":"missing or wrong token","fix":"pass --token-file with the '
                    b"coordinator's token (doradus up keeps it in the runtime folder)\"}}"
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
