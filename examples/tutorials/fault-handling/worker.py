"""Processes jobs, retrying a flaky step; crashes on job 3 (a bug no retry can fix)."""

import time

from doradus import Input, Node

attempts_seen = {"calls": 0}


def flaky_step(job: int) -> int:
    """Fails on every other call, as a network call might."""
    attempts_seen["calls"] += 1
    if attempts_seen["calls"] % 2 == 1:
        raise ConnectionError("service busy")
    return job * 10


def with_retries(job: int, attempts: int = 3, delay: float = 0.01) -> int:
    for attempt in range(1, attempts + 1):
        try:
            return flaky_step(job)
        except ConnectionError as exc:
            if attempt == attempts:
                raise
            print(f"job {job}: {exc}, retry {attempt}")
            time.sleep(delay * attempt)  # back off a little more each time
    raise AssertionError("unreachable")


node = Node()
for event in node:
    if isinstance(event, Input):
        job = event.value[0].as_py()
        if job == 3:
            raise RuntimeError(f"cannot process job {job}")
        node.send_output("result", [with_retries(job)])
