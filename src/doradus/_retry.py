"""Trying again: the one loop behind every connect that retries.

A backend reaching its peer or broker (`doradus.backends._network.ConnectBound`) and a
client reaching the coordinator (`doradus._control.client.call_with_retries`) both call
`retry`. It owns the loop only: how many attempts, the pause between them, which failures
mean "not there yet". What to say before a retry, and the error raised once every attempt
failed, belong to the caller, whose users read them.

Example:
    >>> answers = iter([OSError("refused"), "hello"])
    >>> def attempt() -> str:
    ...     answer = next(answers)
    ...     if isinstance(answer, OSError):
    ...         raise answer
    ...     return answer
    >>> retry(attempt, attempts=3, interval=0, retry_on=(OSError,), give_up=RuntimeError)
    'hello'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry(
    attempt: Callable[[], T],
    *,
    attempts: int,
    interval: float,
    retry_on: tuple[type[BaseException], ...],
    give_up: Callable[[BaseException], BaseException],
    before_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Call ``attempt`` until it returns, at most ``attempts`` times, ``interval`` seconds apart.

    Only ``retry_on`` failures are tried again; any other passes through at once. There
    is no pause after the last attempt: its failure goes to ``give_up`` at once, and what
    ``give_up`` returns is raised from it.

    Args:
        attempt: The call to make.
        attempts: How many times to call it at most (1: once, no retry; below 1 counts as 1).
        interval: Seconds to wait between two attempts.
        retry_on: Exceptions that mean "not reachable yet, try again".
        give_up: Makes the error to raise from the last failure.
        before_retry: Called with the number of the attempt that just failed (from 1) and
            its failure, before the pause that precedes the next one.

    Returns:
        What ``attempt`` returned, the first time it did not raise.

    Raises:
        BaseException: What ``give_up`` made, once every attempt failed (its cause is
            the last failure); any failure not in ``retry_on``, as it was raised.

    Example:
        >>> def refused() -> None:
        ...     raise ConnectionRefusedError("refused")
        >>> failed = []
        >>> retry(refused, attempts=3, interval=0, retry_on=(OSError,),
        ...       give_up=lambda exc: TimeoutError(f"gave up: {exc}"),
        ...       before_retry=lambda k, exc: failed.append(k))
        Traceback (most recent call last):
        ...
        TimeoutError: gave up: refused
        >>> failed
        [1, 2]
    """
    last = max(1, attempts)
    for number in range(1, last + 1):
        try:
            return attempt()
        except retry_on as exc:
            if number == last:
                raise give_up(exc) from exc
            if before_retry is not None:
                before_retry(number, exc)
            time.sleep(interval)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
