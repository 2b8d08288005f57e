"""`doradus run` starts its keeper ahead: the run takes that one, and one not taken goes away."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from doradus._unsafe import keeper as keeper_module
from doradus._unsafe.keeper import Exited, Keeper, prestart


def test_start_takes_the_prestarted_keeper_and_it_runs_nodes() -> None:
    prestart()
    (_pid, ahead), *_ = keeper_module._prestarted
    keeper = Keeper.start(orphan_grace=0.5)
    try:
        assert keeper.pid == ahead.pid
        assert keeper_module._prestarted == []
        out, into = os.pipe()
        keeper.spawn("hello", ["/bin/sh", "-c", "echo hi"], cwd="/", env={}, stdout=into, stderr=into)
        os.close(into)
        assert os.read(out, 100) == b"hi\n"
        os.close(out)
        events: list[object] = []
        deadline = time.monotonic() + 10
        while not any(isinstance(e, Exited) for e in events) and time.monotonic() < deadline:
            events += keeper.receive(timeout=1.0) or []
        assert [type(e).__name__ for e in events] == ["Spawned", "Exited"]
    finally:
        assert keeper.end(grace=1.0)
        keeper.close()


def test_a_keeper_nobody_took_ends_with_the_process_that_started_it() -> None:
    code = (
        "from doradus._unsafe.keeper import prestart, _prestarted\n"
        "prestart(); print(_prestarted[0][1].pid, flush=True)\n"
    )
    started = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    # Its starter waited for it at exit (the keeper exits as soon as its socket closes).
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_keeper_killed_before_its_start_is_replaced() -> None:
    prestart()
    (_pid, ahead), *_ = keeper_module._prestarted
    os.kill(ahead.pid, 9)
    ahead.wait_exit(5.0)
    keeper = Keeper.start(orphan_grace=0.5)
    try:
        assert keeper.pid != ahead.pid
        assert keeper.end(grace=1.0)
    finally:
        keeper.close()
