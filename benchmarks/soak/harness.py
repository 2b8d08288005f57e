"""What every soak part shares: settings, and running Doradus on a generated dataflow.

- `DoradusRun`: one `doradus run` of a generated dataflow in its own folder, with a private
  runtime folder (``XDG_RUNTIME_DIR``), stopped as Ctrl-C would, watched by a
  `watch.TreeWatch`; its ``logs.jsonl``, ``edges.json`` and what it left behind.
- `node`: one node of a generated dataflow, running a script of ``nodes/``.

Watching processes is in `watch`, figures and results files in `results`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watch import TreeWatch, shm_created, shm_listing, sockets_under

SOAK = Path(__file__).resolve().parent
REPO = SOAK.parent.parent
NODES = SOAK / "nodes"
RESULTS = REPO / "benchmarks" / "results"
VENV_BIN = REPO / ".venv" / "bin"
DORADUS = VENV_BIN / "doradus"


# ------------------------------------------------------------------------------ settings
def env_number(name: str, default: float) -> float:
    """A number from the environment (``SOAK_MINUTES=0.5``), or ``default``."""
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def minutes(name: str, default: float) -> float:
    """Seconds from a ``*_MINUTES`` variable (``SOAK_MINUTES`` caps every duration when set lower)."""
    value = env_number(name, default)
    if name != "SOAK_MINUTES" and os.environ.get("SOAK_MINUTES", "").strip():
        value = min(value, env_number("SOAK_MINUTES", default))
    return value * 60.0


def eventually(check: Callable[[], bool], timeout: float, period: float = 0.2) -> bool:
    """Whether ``check()`` becomes true within ``timeout`` seconds (polled every ``period``)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(period)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file a node wrote (atomically), or None while there is none."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------------------ one run
class DoradusRun:
    """`doradus run` of a dataflow (a dict, written as JSON, which is YAML) in a folder of its own."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.work = Path(tempfile.mkdtemp(prefix=f"soak-{name}-"))
        # Short: node sockets live under it and AF_UNIX paths are limited to 107 bytes.
        self.runtime = Path(tempfile.mkdtemp(prefix="sk-"))
        self.runtime.chmod(0o700)
        self.path = self.work / "dataflow.yml"
        self.log = self.work / "run.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.shm_before = shm_listing()
        self.watch = TreeWatch(self.roots, self.roots_first)

    def write(self, dataflow: dict[str, Any]) -> None:
        self.path.write_text(json.dumps(dataflow, indent=2))

    def file(self, name: str) -> Path:
        return self.work / name

    def roots(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []

    def roots_first(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DORADUS_TOKEN_FILE")}
        env.update(XDG_RUNTIME_DIR=str(self.runtime), NO_COLOR="1", PATH=f"{VENV_BIN}:{env.get('PATH', '')}")
        return env

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(DORADUS), "run", str(self.path), "--log-format", "compact", "--no-color"],
                cwd=self.work,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.watch.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float) -> int | None:
        """Ctrl-C (SIGINT to `doradus run`), then wait; its exit code, None if it did not end."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int | None:
        """Its exit code once it ends, or None after ``timeout`` seconds (everything is then killed)."""
        assert self.proc is not None
        try:
            code: int | None = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        self.watch.finish()
        if code is None:
            self.watch.kill_leftovers()
            self.proc.wait()
        return code

    def out_dir(self) -> Path | None:
        found = sorted(self.work.glob("out/*/logs.jsonl"))
        return found[-1].parent if found else None

    def records(self) -> list[dict[str, Any]]:
        """The run's structured records (``out/<run-id>/logs.jsonl``)."""
        out = self.out_dir()
        if out is None:
            return []
        return [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines() if line.strip()]

    def edges(self) -> list[dict[str, Any]]:
        out = self.out_dir()
        if out is None or not (out / "edges.json").exists():
            return []
        edges: list[dict[str, Any]] = json.loads((out / "edges.json").read_text())
        return edges

    def log_tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def cleanup_figures(self) -> dict[str, Any]:
        """After the run: processes still running, zombies, /dev/shm entries and runtime sockets left."""
        alive, zombies = self.watch.leftovers()
        shm_ours, shm_others = shm_created(self.shm_before, self.watch)
        return {
            "processes_seen": len(self.watch.seen),
            "leftover_processes": alive,
            "zombies": zombies,
            "shm_created_left": shm_ours,
            "shm_new_not_ours": shm_others,
            "runtime_left": sockets_under(self.runtime),
        }

    def close(self, keep: bool) -> str | None:
        """Remove the folders; with ``keep``, keep the work folder (returned) for a look."""
        if self.running():
            self.watch.kill_leftovers()
        shutil.rmtree(self.runtime, ignore_errors=True)
        if keep or os.environ.get("SOAK_KEEP"):
            return str(self.work)
        shutil.rmtree(self.work, ignore_errors=True)
        return None


def node(
    node_id: str, script: str, env: dict[str, Any], inputs: dict[str, Any] | None = None, **keys: Any
) -> dict[str, Any]:
    """One node of a generated dataflow, running ``nodes/<script>``."""
    spec: dict[str, Any] = {"id": node_id, "path": str(NODES / script), "outputs": ["out"]}
    if script == "source.py":
        inputs = {"tick": "dora/timer/millis/500"}  # keeps its stream open until Stop (nodes/source.py)
    if inputs:
        spec["inputs"] = inputs
    if script == "sink.py":
        spec.pop("outputs")
    spec["env"] = {k: str(v) for k, v in env.items()}
    spec.update(keys)
    return spec
