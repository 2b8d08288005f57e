"""``doradus build``: run each node's ``build`` commands and keep their output.

Every line of a node's ``build:`` is one shell command, run with ``/bin/sh -c``
in the dataflow's folder, with the node's environment (the dataflow's ``env``
merged with the node's) over the process environment. The output of all of a
node's commands goes to ``out/build-<node>.txt`` next to the dataflow file.
A node stops at its first failing command.

Example::

    results = build_dataflow(load_dataflow(Path("dataflow.yml")))
    failed = [r for r in results if r.status == "failed"]
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from doradus._dataflow.model import Dataflow, NodeSpec

BuildStatus = Literal["ok", "failed", "skipped", "not-built"]
TAIL_LINES = 10
_MISSING_MODULE = re.compile(r"No module named '([A-Za-z0-9_.]+)'")
_NOT_FOUND = re.compile(r"([^\s:]+): (?:command not found|not found|No such file or directory)")
# Import names whose distribution on PyPI is named differently.
_DISTRIBUTIONS = {
    "cv2": "opencv-python",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "serial": "pyserial",
    "usb": "pyusb",
    "dateutil": "python-dateutil",
    "google.protobuf": "protobuf",
}


@dataclass(frozen=True)
class BuildResult:
    """How one node's build ended.

    Example:
        >>> BuildResult("camera", "skipped").ok
        True
    """

    node_id: str
    status: BuildStatus
    duration: float = 0.0
    log_path: Path | None = None
    """The file holding the output of every command (None when nothing ran)."""
    command: str | None = None
    """The failing command, when the build failed."""
    returncode: int | None = None
    tail: tuple[str, ...] = ()
    """The last lines of the output (at most ten)."""
    fix: str | None = None
    """A suggested fix, when the build failed."""

    @property
    def ok(self) -> bool:
        """Whether nothing went wrong (built or nothing to build)."""
        return self.status in ("ok", "skipped")


def build_log_path(dataflow: Dataflow, node_id: str) -> Path:
    """Where a node's build output is written: ``out/build-<node>.txt`` next to the dataflow.

    Example:
        >>> build_log_path(Dataflow(Path("/p/dataflow.yml"), ()), "cam")
        PosixPath('/p/out/build-cam.txt')
    """
    return dataflow.working_dir / "out" / f"build-{node_id}.txt"


def suggest_fix(node_id: str, command: str, returncode: int, output: Iterable[str]) -> str:
    """A suggested fix for a failed build command, from its exit code and output.

    A missing Python module names the ``pip install`` command; a missing
    program (exit code 127) asks to install it or fix the command.

    Example:
        >>> suggest_fix("a", "python setup.py", 1, ["ModuleNotFoundError: No module named 'cv2'"])
        'pip install opencv-python'
        >>> suggest_fix("a", "cmake ..", 127, ["sh: 1: cmake: not found"])
        'install `cmake` or fix the command in `build:` of node a'
    """
    lines = list(output)
    for line in reversed(lines):
        found = _MISSING_MODULE.search(line)
        if found:
            module = found.group(1)
            top = module.split(".")[0]
            name = _DISTRIBUTIONS.get(module) or _DISTRIBUTIONS.get(top) or top
            return f"pip install {name}"
    program = command.split()[0] if command.split() else command
    missing = [found.group(1) for found in map(_NOT_FOUND.search, lines) if found]
    if returncode in (126, 127) and missing:
        program = missing[-1]
    if returncode == 127 or (returncode == 126 and missing):
        return f"install `{program}` or fix the command in `build:` of node {node_id}"
    return (
        f"read the log, fix the cause, and run `doradus build` again "
        f"(or fix the command `{command}` in `build:` of node {node_id})"
    )


def build_node(
    dataflow: Dataflow,
    node: NodeSpec,
    *,
    extra_env: Mapping[str, str] | None = None,
) -> BuildResult:
    """Run one node's build commands in order, stopping at the first failure.

    Args:
        dataflow: The dataflow the node belongs to (its folder is the working directory).
        node: The node; a node without ``build`` is skipped.
        extra_env: Variables set on top of the node's environment.

    Returns:
        The result; its log is ``build_log_path(dataflow, node.id)``.

    Example::

        result = build_node(flow, flow.node("camera"))
        print(result.status, result.log_path)
    """
    if not node.build:
        return BuildResult(node.id, "skipped")
    log_path = build_log_path(dataflow, node.id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **node.env, **(extra_env or {})}
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        for command in node.build:
            log.write(f"$ {command}\n")
            log.flush()
            proc = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=dataflow.working_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
            log.flush()
            if proc.returncode != 0:
                log.write(f"[doradus] command exited with code {proc.returncode}\n")
                log.close()
                output = _command_output(log_path, command)
                return BuildResult(
                    node.id,
                    "failed",
                    time.monotonic() - started,
                    log_path,
                    command,
                    proc.returncode,
                    tuple(output[-TAIL_LINES:]),
                    suggest_fix(node.id, command, proc.returncode, output),
                )
    return BuildResult(node.id, "ok", time.monotonic() - started, log_path)


def build_dataflow(
    dataflow: Dataflow,
    *,
    nodes: Iterable[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    on_start: Callable[[NodeSpec], None] | None = None,
    on_done: Callable[[BuildResult], None] | None = None,
) -> list[BuildResult]:
    """Build the nodes of ``dataflow`` one after another, in file order.

    After a failure the remaining nodes are reported ``not-built``.

    Args:
        dataflow: The loaded dataflow.
        nodes: Only these node ids (all when None).
        extra_env: Variables set on top of every node's environment.
        on_start: Called before a node with build commands starts.
        on_done: Called with each node's result (skipped ones too).

    Returns:
        One result per selected node, in file order.

    Raises:
        KeyError: A node id in ``nodes`` is not in the dataflow.

    Example::

        for result in build_dataflow(flow, nodes=["camera"]):
            print(result.node_id, result.status)
    """
    selected = [dataflow.node(node_id) for node_id in nodes] if nodes else list(dataflow.nodes)
    results: list[BuildResult] = []
    failed = False
    for node in selected:
        if failed and node.build:
            result = BuildResult(node.id, "not-built")
        else:
            if node.build and on_start:
                on_start(node)
            result = build_node(dataflow, node, extra_env=extra_env)
            failed = failed or result.status == "failed"
        results.append(result)
        if on_done:
            on_done(result)
    return results


def _command_output(log_path: Path, command: str) -> list[str]:
    """The failing command's own output lines (after its ``$ command`` header)."""
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    header = f"$ {command}"
    start = max((i for i, line in enumerate(lines) if line == header), default=-1) + 1
    return [line for line in lines[start:] if not line.startswith("[doradus] command exited")]
