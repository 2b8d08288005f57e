"""The machine daemon's link to its coordinator: connect, register, send, and reconnect.

At start-up `CoordinatorLink.open` follows the contract of every client command: one try,
then ``retries`` retries (`call_with_retries`), then `ServiceUnreachable`. Once connected,
a dropped link is not the end: `CoordinatorLink.reconnect` tries again and again for a window
of seconds (``doradus daemon --reconnect-window``), waiting `FIRST_BACKOFF` seconds, doubled
after each failure up to `MAX_BACKOFF`, and registers again with the dataflows the daemon still
runs (`doradus._control.daemon_link.HeldDataflow`), which the coordinator re-attaches.

The API token is looked up again for each attempt, as every command finds it (`resolve_token`:
``token_file``, ``DORADUS_TOKEN_FILE``, the runtime folder), so a coordinator started again with
a new token in the runtime folder takes this daemon back; so is this machine's daemon key.

While the link is down, `CoordinatorLink.send` keeps log records in a bounded queue
(`AWAY_BACKLOG`, the oldest dropped first and counted in ``dropped_while_away``) and sends
them once registered again, before anything newer; other messages are dropped (the
``register`` carries the state they would have told).

Example::

    link = CoordinatorLink(address, machine_id="robot-1", say=print)
    welcome = link.open()
    link.send({"type": "heartbeat"})
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from doradus._control.client import (
    DEFAULT_RETRIES,
    DEFAULT_RETRY_INTERVAL,
    Address,
    ApiError,
    call_with_retries,
    describe_failure,
    found_daemon_key,
    resolve_token,
)
from doradus._control.daemon_link import NOT_AUTHENTICATED, REGISTER_TIMEOUT, SEAT_TAKEN

FIRST_BACKOFF = 0.2
"""Seconds before the first reconnection attempt; doubled after each failure."""
MAX_BACKOFF = 2.0
"""The longest wait between two reconnection attempts."""
AWAY_BACKLOG = 10_000
"""Log records kept while the coordinator is away (the oldest dropped first)."""
_FIX_TOKEN = "pass --token-file with the coordinator's token (or set DORADUS_TOKEN_FILE)"
_REFUSALS = {
    NOT_AUTHENTICATED: (
        401,
        "run the daemon as the coordinator's user on its machine (it reads the daemon key from "
        "the runtime folder), or pass --token-file with the coordinator's token",
    ),
    SEAT_TAKEN: (409, "stop the other daemon first, or give this one another --machine-id"),
}
"""Close codes of a refused registration → (the `ApiError` status, the fix)."""
Held = Callable[[], list[dict[str, Any]]]
"""The dataflows the daemon runs, as its ``register`` lists them."""


def backoff_delays(first: float = FIRST_BACKOFF, cap: float = MAX_BACKOFF) -> Any:
    """The waits between reconnection attempts: ``first``, doubled each time, at most ``cap``.

    Example:
        >>> delays = backoff_delays()
        >>> [next(delays) for _ in range(6)]
        [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    """
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * 2)


class CoordinatorLink:
    """One daemon's WebSocket to its coordinator (thread-safe `send`; `recv` from one thread).

    Example::

        link = CoordinatorLink(address, machine_id="robot-1", say=print)
        link.open()
        message = link.recv()
    """

    def __init__(
        self,
        address: Address,
        *,
        machine_id: str,
        token: str | None = None,
        token_file: str | None = None,
        retries: int = DEFAULT_RETRIES,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        say: Callable[[str], None] = print,
    ) -> None:
        self.address = address
        self.machine_id = machine_id
        self.token = token
        """The token to send when none is found (`resolve_token` is asked first at each attempt)."""
        self.token_file = token_file
        self.retries = retries
        self.retry_interval = retry_interval
        self.say = say
        self.dropped_while_away = 0
        """Log records dropped from a full backlog while the coordinator was away."""
        self.why = ""
        """Why the last connection attempt failed."""
        self._ws: Any = None
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._backlog: deque[dict[str, Any]] = deque()

    @property
    def up(self) -> bool:
        """Whether the link is registered and usable.

        Example::

            if not link.up: ...   # the coordinator is away
        """
        return self._up.is_set()

    def open(self, held: Held = list) -> dict[str, Any]:
        """Connect (one try, then up to ``retries`` retries) and register; the coordinator's welcome.

        Raises:
            ServiceUnreachable: The first try and every retry failed.
            ApiError: The coordinator refused the token (401), the registration
                (401: no valid secret; 409: the machine id has a connected daemon),
                or closed the link at once.

        Example::

            welcome = link.open()   # {'type': 'welcome', 'heartbeat_interval': 1.0}
        """
        from websockets.exceptions import InvalidHandshake

        self._ws = call_with_retries(
            lambda: self._connect(5.0),
            retries=self.retries,
            interval=self.retry_interval,
            what=f"coordinator at {self.address}",
            retry_on=(OSError, InvalidHandshake, TimeoutError),
        )
        return self._register(held())

    def reconnect(self, window: float, held: Held) -> dict[str, Any] | None:
        """Try to connect and register again for ``window`` seconds; the welcome, or None (see `why`).

        Example::

            welcome = link.reconnect(60.0, held=lambda: [])
        """
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        deadline = time.monotonic() + window
        delays = backoff_delays()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self._ws = self._connect(min(5.0, max(0.5, left)))
                return self._register(held())
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed, ApiError) as exc:
                self.why = describe_failure(exc)
            time.sleep(max(0.0, min(next(delays), deadline - time.monotonic())))

    def _connect(self, timeout: float) -> Any:
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        token = self.current_token()
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            return connect(
                f"{self.address.ws}/daemon", additional_headers=headers, open_timeout=timeout, max_size=None
            )
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):  # an answer, not an absence: no retry
                raise ApiError(401, "the coordinator refused the token", _FIX_TOKEN) from exc
            raise

    def _register(self, held: list[dict[str, Any]]) -> dict[str, Any]:
        """Send ``register``, wait for the welcome, then send what waited and open the link to senders."""
        register = {
            "type": "register",
            "machine_id": self.machine_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "address": self.address_for_peers(),
            "secret": found_daemon_key(self.address) or self.current_token(),
            "dataflows": held,
        }
        self._ws.send(json.dumps(register))
        welcome = self._welcome()
        with self._lock:
            while self._backlog:
                self._ws.send(json.dumps(self._backlog[0]))
                self._backlog.popleft()
            self._up.set()
        return welcome

    def _welcome(self) -> dict[str, Any]:
        """The coordinator's first answer; its refusal as an `ApiError`."""
        from websockets.exceptions import ConnectionClosed

        try:
            answer: dict[str, Any] = json.loads(self._ws.recv(timeout=REGISTER_TIMEOUT))
        except (ConnectionClosed, TimeoutError) as exc:
            self._ws.close()
            closed = getattr(exc, "rcvd", None)
            code, reason = (int(closed.code), str(closed.reason)) if closed is not None else (0, "no answer")
            status, fix = _REFUSALS.get(code, (400, "see the coordinator's log"))
            raise ApiError(status, f"the coordinator refused this daemon: {reason or code}", fix) from None
        return answer

    def current_token(self) -> str | None:
        """The API token to send now: as found for this address (`resolve_token`), else the one given.

        Example::

            link.current_token()   # 'mM3...'
        """
        try:
            return resolve_token(self.token_file, self.address) or self.token
        except OSError:
            return self.token

    def address_for_peers(self) -> str:
        """The IP this machine reaches the coordinator from: where other machines reach its nodes.

        Example::

            link.address_for_peers()   # '10.200.1.2'
        """
        try:
            return str(self._ws.socket.getsockname()[0])
        except (AttributeError, OSError):
            return "127.0.0.1"

    def send(self, message: dict[str, Any]) -> bool:
        """Send one JSON message (thread-safe); whether it went out.

        While the link is down a log record is kept for later (`AWAY_BACKLOG`), anything else dropped.

        Example::

            link.send({"type": "heartbeat"})   # True
        """
        with self._lock:
            if self._up.is_set():
                try:
                    self._ws.send(json.dumps(message))
                    return True
                except Exception:
                    self._up.clear()
            if message.get("type") == "log":
                if len(self._backlog) >= AWAY_BACKLOG:
                    self._backlog.popleft()
                    self.dropped_while_away += 1
                self._backlog.append(message)
            return False

    def recv(self) -> dict[str, Any]:
        """The next message from the coordinator.

        Raises:
            ConnectionClosed: The link dropped (it is marked down).
            OSError: Likewise.

        Example::

            message = link.recv()   # {'type': 'spawn', ...}
        """
        try:
            message: dict[str, Any] = json.loads(self._ws.recv())
        except BaseException:
            self.down()
            raise
        return message

    def down(self) -> None:
        """Mark the link down: senders queue logs from now on.

        Example::

            link.down()
        """
        with self._lock:
            self._up.clear()

    def close(self) -> None:
        """Close the WebSocket (idempotent); nothing is sent after.

        Example::

            link.close()
        """
        self.down()
        try:
            if self._ws is not None:
                self._ws.close()
        except Exception:
            pass
