"""Starting nodes: through the run's keeper, with their command, environment and configuration.

Nodes are started by the run's keeper (`doradus._unsafe.keeper`): nothing of a run outlives
its daemon, whatever kills the daemon. `Spawner.spawn` asks the keeper to start a node with
its command (`command`) and environment (`environment`: where to register, as whom, at which
log level), its stdout and stderr on pipes the I/O thread reads
(`doradus._runtime.output`). The keeper answers each request (started, or failed) and
reports each exit; `Spawner.keeper_events` acts on those reports.

Example::

    spawner = Spawner(state, run_log, reader, control, extra_env={})
    spawner.start_keeper(node_files=1024, folders=control.folders)
    spawner.spawn(state.nodes["camera"])
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from doradus._dataflow.model import NodeSpec
from doradus._runtime.control_socket import ControlSocket
from doradus._runtime.ending import ORPHAN_GRACE, report_exit
from doradus._runtime.output import OutputReader
from doradus._runtime.processes import NodeProcess, OutputPipe
from doradus._runtime.run_log import RunLog
from doradus._runtime.state import RunState
from doradus._unsafe.keeper import Exited, Keeper, Spawned, SpawnFailed
from doradus._wire.node_config import ENV_CONFIG, NodeEnvironment

COMPAT_PATH = str(Path(__file__).parent.parent / "_compat")
"""Put first on a node's import path: ``import dora`` finds the compatibility layer."""

NODE_ENV_DEFAULTS: Mapping[str, str] = {
    # numpy's OpenBLAS starts a thread per core at import, and each spins for 2^28 cycles
    # (≈ 0.1 s) waiting for work before it sleeps: in every node, at start-up, on cores the
    # other nodes are starting on. 2^18 cycles (≈ 0.1 ms) keeps its threads, without the spin.
    "OPENBLAS_THREAD_TIMEOUT": "18",
}
"""Variables a node gets unless the environment or the dataflow's ``env`` sets them."""


def command(spec: NodeSpec) -> list[str]:
    """The command line starting a node.

    Example:
        >>> command(NodeSpec(id="s", kind="shell", args=("echo", "hi")))
        ['/bin/sh', '-c', 'echo hi']
    """
    if spec.kind == "python":
        return [sys.executable, str(spec.executable), *spec.args]
    if spec.kind == "operator":
        return [sys.executable, "-m", "doradus._node.operator_host", *spec.args]
    if spec.kind == "shell":
        return ["/bin/sh", "-c", " ".join(spec.args)]
    return [str(spec.executable), *spec.args]


def environment(
    spec: NodeSpec, *, run_id: str, control_path: str, level: str, extra_env: Mapping[str, str]
) -> dict[str, str]:
    """A node's environment: ours, the dataflow's, the run's, and where and as whom to register.

    Example:
        >>> env = environment(NodeSpec(id="cam", kind="python"), run_id="r1", control_path="/c.sock",
        ...                   level="INFO", extra_env={"MODE": "test"})
        >>> env["DORADUS_NODE_ID"], env["MODE"], json.loads(env[ENV_CONFIG])["control"]
        ('cam', 'test', '/c.sock')
        >>> os.environ.get("OPENBLAS_THREAD_TIMEOUT") or env["OPENBLAS_THREAD_TIMEOUT"]
        '18'
    """
    env = dict(os.environ)
    env.update(spec.env)
    env.update(extra_env)
    for key, value in NODE_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    found: NodeEnvironment = {"control": control_path, "node_id": spec.id, "run_id": run_id}
    env[ENV_CONFIG] = json.dumps(found)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (COMPAT_PATH, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["DORADUS_RUN_ID"] = run_id
    env["DORADUS_NODE_ID"] = spec.id
    env["DORADUS_LOG_LEVEL"] = level
    return env


class Spawner:
    """Asks the run's keeper to start nodes, and acts on its answers and exit reports.

    Thread safety: `spawn` and `wait_answered` come from the thread starting the run;
    `keeper_events` from the I/O thread.
    """

    def __init__(
        self,
        state: RunState,
        run_log: RunLog,
        reader: OutputReader,
        control: ControlSocket,
        *,
        extra_env: Mapping[str, str],
    ) -> None:
        self._state = state
        self._log = run_log
        self._reader = reader
        self._control = control
        self.extra_env = extra_env
        self.keeper: Keeper | None = None
        self._unanswered = 0
        """Spawn requests the keeper has not answered yet."""
        self.on_exit: Callable[[NodeProcess, int], bool] | None = None
        """Called (the run's lock held) when a started node's process exits, before its end is
        taken: True if it starts again (`doradus._runtime.restart_policy.Reviver.on_exit`)."""

    def start_keeper(self, node_files: int, folders: Sequence[str]) -> Keeper:
        """Start the run's keeper: nodes get ``node_files`` descriptors; ``folders`` go if we die."""
        self.keeper = Keeper.start(node_files=node_files, orphan_grace=ORPHAN_GRACE, remove=list(folders))
        return self.keeper

    def spawn(self, proc: NodeProcess) -> None:
        """Ask the keeper to start a node; the I/O thread takes its answer (`keeper_events`).

        A restarted node (``proc.restarts``) appends to its log file, and its pipes join those
        of its old process that a helper may still hold.
        """
        spec = proc.spec
        state = self._state
        assert self.keeper is not None
        # closed once its pipes are (`NodeProcess.close_log`)
        mode = "a" if proc.restarts else "w"
        proc.log = open(state.out_dir / f"log_{spec.id}.txt", mode, encoding="utf-8")  # noqa: SIM115
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        os.set_blocking(out_r, False)
        os.set_blocking(err_r, False)
        relay = state.relays.get(spec.id)
        proc.pipes = [
            *proc.pipes,
            OutputPipe(proc, "stdout", out_r, relay),
            OutputPipe(proc, "stderr", err_r),
        ]
        with state.lock:
            self._unanswered += 1
            proc.requested = True
        try:
            env = environment(
                spec,
                run_id=state.run_id,
                control_path=self._control.path,
                level=self._log.levels[spec.id],
                extra_env={**self.extra_env, **proc.env_override},
            )
            self.keeper.spawn(
                spec.id,
                command(spec),
                cwd=str(state.dataflow.working_dir),
                env=env,
                stdout=out_w,
                stderr=err_w,
            )
        except OSError as exc:  # the keeper has gone (the I/O thread says so) or the request is too big
            self._on_spawn_failed(proc, f"the request did not reach the node keeper: {exc}")
        finally:
            # The keeper got copies: end of file comes once the node and its children close theirs.
            os.close(out_w)
            os.close(err_w)

    def wait_answered(self) -> None:
        """Wait until the keeper answered every request (caller holds the lock)."""
        while self._unanswered:  # the keeper answers each request (or the I/O thread fails it)
            self._state.changed.wait()

    def keeper_events(self, keeper: Keeper, wait: float = 0.0) -> bool:
        """Act on the keeper's reports, waiting ``wait`` seconds at most; False once it has gone."""
        events = keeper.receive(wait)
        for event in events or []:
            proc = self._state.nodes.get(event.key)
            if proc is None:
                continue
            if isinstance(event, Spawned):
                self._on_spawned(proc, event.pid)
            elif isinstance(event, SpawnFailed):
                self._on_spawn_failed(proc, event.error)
            elif isinstance(event, Exited) and not proc.exited:
                self._on_exited(proc, event.code)
        if events is None:
            self._keeper_gone(keeper)
            return False
        return True

    def _keeper_gone(self, keeper: Keeper) -> None:
        """The keeper ended: at the end of the run, or killed (its nodes were killed with it)."""
        self._reader.forget(keeper)
        if self._state.ending:
            return
        self._log.runtime_record(
            "ERROR",
            f"the node keeper (pid {keeper.pid}) ended unexpectedly: every node it started was killed",
        )
        for proc in self._state.nodes.values():
            if proc.requested and not proc.answered:
                self._on_spawn_failed(proc, "the node keeper ended")
            elif proc.pid is not None and not proc.exited:
                proc.killed = True
                self._on_exited(proc, -signal.SIGKILL)

    def _on_spawned(self, proc: NodeProcess, pid: int) -> None:
        if not self._answer(proc):
            return
        proc.pid = pid
        proc.started_at = time.monotonic()
        self._reader.watch(proc)
        self._log.runtime_record("INFO", f"started (pid {pid})", proc.spec.id, {"event": "started"})
        if self._log.telemetry is not None:
            self._log.telemetry.node_started(proc.spec.id, pid)

    def _on_spawn_failed(self, proc: NodeProcess, error: str) -> None:
        if not self._answer(proc):
            return
        for pipe in proc.pipes:
            os.close(pipe.fd)
        proc.pipes = []
        message = f"could not start node: {error}"
        proc.tail.append(message)
        proc.write_raw(message)
        proc.close_log()
        self._log.runtime_record("ERROR", message, proc.spec.id, {"event": "failed"})
        relay = self._state.relays.get(proc.spec.id)
        if relay is not None:
            relay.finish()  # no stdout will come: its readers' inputs close
        with self._state.lock:
            self._control.node_ended(proc, 127)

    def _answer(self, proc: NodeProcess) -> bool:
        """Count the answer to a node's spawn request; False if it had one (exactly one counts)."""
        with self._state.lock:
            if proc.answered:
                return False
            proc.answered = True
            self._unanswered -= 1
            self._state.changed.notify_all()
            return True

    def _on_exited(self, proc: NodeProcess, code: int) -> None:
        """The node's process exited: take what it wrote, report it and close what it leaves."""
        self._reader.drain(proc)
        if not proc.pipes:
            proc.close_log()
        report_exit(self._log, proc, code)
        with self._state.lock:
            if self.on_exit is not None:
                self.on_exit(proc, code)  # its restart policy may start it again: not an end then
            self._control.node_ended(proc, code)
