"""Finding the coordinator and talking to it with bounded retries.

The address comes from, in order: an explicit ``--coordinator``, the
``DORADUS_COORDINATOR`` variable, the ``coordinator`` of the profile in use
(``--profile`` / ``DORADUS_PROFILE``), the state file ``doradus up`` writes
(``<runtime folder>/up.json``), then ``127.0.0.1:6300``.

Reaching the coordinator follows one contract, for every client command and
the machine daemon alike (`call_with_retries`, on `doradus._retry.retry`): one
try, then up to ``retries`` retries (`DEFAULT_RETRIES`), each announced on stderr as
``No coordinator at ADDR (REASON). Retrying in 1s... [Attempt k/N]``.

The API token comes from ``--token-file`` (or the profile's ``token_file``),
``DORADUS_TOKEN_FILE``, else from the runtime folder, for the coordinator
``doradus up`` or ``doradus coordinator`` started on this machine
(`resolve_token`): a token found there is only ever sent to that coordinator.

Example::

    client = ControlClient(resolve_address(None), retries=2)
    print(client.get("/dataflows"))
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from doradus._control.auth import is_loopback, read_secret, token_path
from doradus._exceptions import ConnectError, DoradusError
from doradus._paths import runtime_base
from doradus._retry import retry

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6300
ENV_COORDINATOR = "DORADUS_COORDINATOR"
ENV_TOKEN_FILE = "DORADUS_TOKEN_FILE"
DEFAULT_RETRIES = 2
"""Retries after the first try when the coordinator does not answer (``--retries``)."""
DEFAULT_RETRY_INTERVAL = 1.0
"""Seconds to wait before each retry (``--retry-interval``)."""
MAX_RETRY_INTERVAL = 2.0
"""The longest wait before a retry: longer would look like a hang, not a retry."""
RECONNECT_WINDOW = 60.0
"""Seconds a daemon that lost its coordinator keeps its dataflows running and tries to reconnect
(``doradus daemon --reconnect-window``); also how long a restarted coordinator waits for the
daemons of the dataflows it restored."""
API = "/api/v1"
FIX_UNREACHABLE = (
    "start a coordinator with `doradus up` (or `doradus coordinator`), "
    "or point --coordinator at a running one"
)

T = TypeVar("T")


class ServiceUnreachable(ConnectError):
    """The coordinator did not answer: not at the first try, nor at any retry.

    ``retries`` is how many retries were made after the first try (0: it was
    tried once); the message is the last cause, ``No coordinator at ADDR (REASON)``.

    Example:
        >>> error = ServiceUnreachable("No coordinator at 127.0.0.1:6300 (connection refused)", retries=2)
        >>> error.retries, error.fix.startswith("start a coordinator")
        (2, True)
    """

    def __init__(self, message: str, fix: str = FIX_UNREACHABLE, *, retries: int = 0) -> None:
        self.fix = fix
        self.retries = retries
        super().__init__(message)


class ApiError(DoradusError):
    """The coordinator answered with an error (``status`` is the HTTP status).

    Example:
        >>> ApiError(404, "no dataflow 'x'").status
        404
    """

    def __init__(self, status: int, message: str, fix: str | None = None) -> None:
        self.status = status
        self.fix = fix
        super().__init__(message)


@dataclass(frozen=True)
class Address:
    """Where the coordinator listens and which setting said so."""

    host: str
    port: int
    source: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def http(self) -> str:
        """The HTTP base URL of the API."""
        return f"http://{self.host}:{self.port}{API}"

    @property
    def ws(self) -> str:
        """The WebSocket base URL of the API."""
        return f"ws://{self.host}:{self.port}{API}"


def parse_address(text: str, source: str) -> Address:
    """``HOST:PORT``, ``HOST`` or ``:PORT`` (``http://`` prefixes allowed) into an `Address`.

    Example:
        >>> str(parse_address("localhost:7000", "flag"))
        'localhost:7000'
    """
    rest = text.strip().removeprefix("http://").removeprefix("ws://").rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep:
        host, port = rest, str(DEFAULT_PORT)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (from {source})")
    return Address(host or DEFAULT_HOST, int(port), source)


def state_path() -> Path:
    """The state file ``doradus up`` writes (address and pids).

    Example:
        >>> state_path().name
        'up.json'
    """
    return runtime_base() / "up.json"


def read_state() -> dict[str, Any] | None:
    """The contents of the state file, or None when there is none (or it is unreadable).

    Example:
        >>> read_state() is None or "address" in read_state()
        True
    """
    try:
        data = json.loads(state_path().read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_state(data: dict[str, Any]) -> Path:
    """Write the state file with mode 0600.

    Example::

        write_state({"address": "127.0.0.1:6300", "pids": {"coordinator": 10}})
    """
    path = state_path()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(data, file, indent=2, sort_keys=True)
    os.chmod(path, 0o600)
    return path


def resolve_address(explicit: str | None) -> Address:
    """The coordinator's address by the documented precedence.

    Example:
        >>> resolve_address("10.0.0.2:7000").source
        '--coordinator'
    """
    if explicit:
        return parse_address(explicit, "--coordinator")
    env = os.environ.get(ENV_COORDINATOR)
    if env:
        return parse_address(env, ENV_COORDINATOR)
    profile = _profile_coordinator()
    if profile:
        return parse_address(*profile)
    state = read_state()
    if state and isinstance(state.get("address"), str):
        return parse_address(state["address"], str(state_path()))
    return Address(DEFAULT_HOST, DEFAULT_PORT, "default")


def _profile_coordinator() -> tuple[str, str] | None:
    """The active profile's coordinator and a source naming the profile, if it sets one."""
    from doradus._control.profiles import active_profile

    profile = active_profile()
    if profile is None or not profile.coordinator:
        return None
    return profile.coordinator, f"profile {profile.name!r} ({profile.source})"


def resolve_token(token_file: str | None, address: Address | None = None) -> str | None:
    """The API token to send to the coordinator at ``address``, if there is one.

    In order: ``token_file`` (``--token-file``, or the profile's), the file
    ``DORADUS_TOKEN_FILE`` names, the token file of the coordinator ``doradus up``
    recorded (only when ``address`` is that coordinator's), then the token Doradus
    made for a coordinator listening on this machine at ``address``'s port (only
    when ``address`` is a loopback one). A token made for one coordinator is never
    sent to another.

    Raises:
        OSError: A token file given explicitly cannot be read.

    Example:
        >>> resolve_token(None, parse_address("192.0.2.7:6300", "flag")) is None
        True
    """
    path = token_file or os.environ.get(ENV_TOKEN_FILE)
    if path:
        token = read_secret(Path(path).expanduser())
        if token is None:
            raise FileNotFoundError(errno.ENOENT, f"no token file at {path}", path)
        return token
    state = read_state() or {}
    recorded = state.get("token_file")
    if isinstance(recorded, str) and (address is None or _same_coordinator(address, state.get("address"))):
        token = _found_secret(recorded)
        if token:
            return token
    if address is not None and is_loopback(address.host):
        return _found_secret(token_path(address.port))
    return None


def found_daemon_key(address: Address) -> str | None:
    """The daemon key of the coordinator at ``address``, when it runs on this machine for this user.

    Only for a loopback ``address``: the key is never sent to another machine.

    Example:
        >>> found_daemon_key(parse_address("192.0.2.7:6300", "flag")) is None
        True
    """
    from doradus._control.auth import daemon_key_path

    return _found_secret(daemon_key_path(address.port)) if is_loopback(address.host) else None


def _found_secret(path: str | os.PathLike[str]) -> str | None:
    """A secret found (not given): an unreadable file is as good as none."""
    try:
        return read_secret(path)
    except OSError:
        return None


def _same_coordinator(address: Address, recorded: object) -> bool:
    """Whether ``recorded`` (``up.json``'s address) is ``address``: same port, same or loopback host.

    Example:
        >>> _same_coordinator(parse_address("localhost:6300", "flag"), "127.0.0.1:6300")
        True
    """
    try:
        other = parse_address(str(recorded), "state")
    except ValueError:
        return False
    same_host = other.host == address.host or (is_loopback(other.host) and is_loopback(address.host))
    return other.port == address.port and same_host


def call_with_retries(
    attempt: Callable[[], T],
    *,
    what: str,
    retry_on: tuple[type[BaseException], ...],
    retries: int = DEFAULT_RETRIES,
    interval: float = DEFAULT_RETRY_INTERVAL,
    say: Callable[[str], None] | None = None,
) -> T:
    """Call ``attempt`` once, then retry it up to ``retries`` times while it cannot connect.

    Before retry ``k`` of ``N`` it says, then waits ``interval`` seconds::

        No coordinator at 127.0.0.1:6300 (connection refused). Retrying in 1s... [Attempt 1/2]

    When the last retry fails too (at once with ``retries=0``) it raises
    `ServiceUnreachable`; its caller decides what to print then (the CLI:
    ``Maximum retries reached. Exiting.`` and the fix). Only ``retry_on``
    errors are retried: any other (say, from a coordinator that answered)
    passes through at once.

    Args:
        attempt: The call to make.
        what: What is being reached, for messages (``coordinator at 127.0.0.1:6300``).
        retry_on: Exceptions that mean "not reachable, try again".
        retries: Retries after the first try; 0 tries once.
        interval: Seconds before each retry (at most `MAX_RETRY_INTERVAL`).
        say: Where retry lines go (stderr by default).

    Returns:
        What ``attempt`` returned, the first time it did not raise.

    Raises:
        ServiceUnreachable: The first try and every retry failed; ``retries``
            tells how many retries there were, the message the last cause.

    Example:
        >>> tries = iter([OSError("Connection refused"), "answer"])
        >>> def attempt() -> str:
        ...     result = next(tries)
        ...     if isinstance(result, OSError):
        ...         raise result
        ...     return result
        >>> call_with_retries(attempt, what="coordinator at 127.0.0.1:6300",
        ...                   retry_on=(OSError,), interval=0, say=print)
        No coordinator at 127.0.0.1:6300 (connection refused). Retrying in 0s... [Attempt 1/2]
        'answer'
    """
    retries = max(0, retries)
    pause = min(max(interval, 0.0), MAX_RETRY_INTERVAL)
    emit = say or (lambda text: print(text, file=sys.stderr, flush=True))

    def announce(failed: int, exc: BaseException) -> None:
        emit(f"No {what} ({describe_failure(exc)}). Retrying in {pause:g}s... [Attempt {failed}/{retries}]")

    return retry(
        attempt,
        attempts=retries + 1,
        interval=pause,
        retry_on=retry_on,
        give_up=lambda exc: ServiceUnreachable(f"No {what} ({describe_failure(exc)})", retries=retries),
        before_retry=announce,
    )


def describe_failure(exc: BaseException) -> str:
    """Why reaching the coordinator failed, in a few words (``connection refused``).

    Example:
        >>> describe_failure(ConnectionRefusedError(111, "Connection refused"))
        'connection refused'
    """
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return text


class ControlClient:
    """A small synchronous client of the coordinator's ``/api/v1``.

    Each request that cannot connect is retried as `call_with_retries`
    says: ``retries`` retries after the first try, ``retry_interval`` s apart.

    Example::

        client = ControlClient(resolve_address(None))
        dataflows = client.get("/dataflows")
    """

    def __init__(
        self,
        address: Address,
        *,
        retries: int = DEFAULT_RETRIES,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.address = address
        self.retries = retries
        self.retry_interval = retry_interval
        self.token = token
        self.timeout = timeout

    @property
    def headers(self) -> dict[str, str]:
        """Headers every request carries (the bearer token when there is one)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, json_body: Any = None, params: Any = None) -> Any:
        """Send one request (retrying only when the coordinator is unreachable); the decoded JSON.

        Raises:
            ServiceUnreachable: No answer to the first try nor to any retry.
            ApiError: The coordinator answered with an error status.

        Example::

            client.request("POST", "/dataflows/demo/stop", {"force": True})
        """
        import httpx

        def attempt() -> httpx.Response:
            return httpx.request(
                method,
                self.address.http + path,
                json=json_body,
                params=params,
                headers=self.headers,
                timeout=self.timeout,
            )

        response = call_with_retries(
            attempt,
            retries=self.retries,
            interval=self.retry_interval,
            what=f"coordinator at {self.address}",
            retry_on=(httpx.ConnectError, httpx.ConnectTimeout),
        )
        if response.status_code >= 400:
            raise _api_error(response)
        return response.json()

    def get(self, path: str, params: Any = None) -> Any:
        """``GET`` an API path.

        Example::

            client.get("/dataflows")
        """
        return self.request("GET", path, params=params)

    def post(self, path: str, json_body: Any = None) -> Any:
        """``POST`` to an API path.

        Example::

            client.post("/destroy")
        """
        return self.request("POST", path, json_body if json_body is not None else {})

    def ping(self) -> bool:
        """Whether a coordinator answers right now (one attempt, no retry).

        Example::

            if not client.ping(): ...
        """
        import httpx

        try:
            httpx.get(self.address.http + "/health", headers=self.headers, timeout=2.0)
        except httpx.HTTPError:
            return False
        return True


def _api_error(response: Any) -> ApiError:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, dict):
        return ApiError(response.status_code, str(detail.get("error")), detail.get("fix"))
    if response.status_code == 401:
        return ApiError(401, "the coordinator refused the token", "pass --token-file with its token")
    return ApiError(response.status_code, str(detail or response.text or response.reason_phrase))
