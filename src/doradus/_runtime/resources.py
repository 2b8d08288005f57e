"""Whether this machine can hold a run: open files and memory, checked before anything starts.

`raise_open_file_limit` lifts the supervisor's own descriptor limit (its nodes keep the one
it had); `check_resources` estimates what a run needs and raises `ResourceLimitError`,
naming the limit and the fix, when the machine gives less.

Example:
    >>> from pathlib import Path
    >>> from doradus._dataflow.model import Dataflow, NodeSpec
    >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(NodeSpec(id="a", kind="shell"),))
    >>> check_resources(flow, {"a"})   # one shell node: nothing to say
"""

from __future__ import annotations

import importlib
import os
import resource
from collections.abc import Collection
from typing import Any

from doradus._dataflow.model import Dataflow, NodeSource
from doradus._exceptions import ResourceLimitError

FILES_PER_NODE = 4
"""Descriptors the daemon holds per running node: stdout, stderr, log file, control socket."""
FILES_RESERVED = 64
"""Descriptors kept for the daemon itself beyond those open at the start (store, sockets, keeper)."""
MIB = 2**20
MEMORY_PER_NODE = {"python": 25 * MIB, "operator": 25 * MIB, "executable": 4 * MIB, "shell": 1 * MIB}
"""A rough low estimate of a node's own memory by kind (an idle Python node with pyarrow: ~25 MiB)."""
_node_files: int | None = None
"""The soft descriptor limit this process had before `raise_open_file_limit`: the one nodes get."""


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft descriptor limit to its hard limit (``ulimit -n`` up to ``-Hn``).

    The daemon holds several descriptors per node, so the usual soft limit of 1024 would
    cap a run at a few hundred nodes. Nodes keep the soft limit this process had before
    the first call: programs using ``select()`` break on descriptors past 1024, and a node
    needing more may raise its own limit up to the same hard limit.

    Returns:
        (the soft limit nodes get, the hard limit).

    Example:
        >>> node_files, hard = raise_open_file_limit()
        >>> resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard, node_files <= hard
        (True, True)
    """
    global _node_files
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if _node_files is None:
        _node_files = soft
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # e.g. an unlimited hard limit: `check_resources` measures what we have
    return _node_files, hard


def check_resources(flow: Dataflow, here: Collection[str]) -> None:
    """Fail early when this machine cannot hold the nodes ``here``: memory and descriptors.

    Memory: a rough low estimate per node (`MEMORY_PER_NODE`) against the memory
    available (the machine's: a container's own limit is not read). Descriptors:
    `FILES_PER_NODE` per node, two per link between nodes here, and those of the daemon
    itself, against the limit (``ulimit -n``; see `raise_open_file_limit`). Nothing is
    started yet when this raises.

    Args:
        flow: the dataflow.
        here: the ids of its nodes this daemon runs.

    Raises:
        ResourceLimitError: Naming the limit, the numbers and the fix.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Dataflow, NodeSpec
        >>> flow = Dataflow(path=Path("/tmp/df.yml"), nodes=(NodeSpec(id="a", kind="python"),))
        >>> check_resources(flow, {"a"})
    """
    spawned = [spec for spec in flow.nodes if spec.id in here and spec.kind != "dynamic"]
    psutil: Any = importlib.import_module("psutil")  # untyped; a core dependency
    available = int(psutil.virtual_memory().available)
    counts: dict[str, int] = {}
    for spec in spawned:
        counts[spec.kind] = counts.get(spec.kind, 0) + 1
    estimate = sum(MEMORY_PER_NODE.get(kind, 0) * n for kind, n in counts.items())
    if estimate > available:
        parts = ", ".join(
            f"{n} {kind} nodes of {MEMORY_PER_NODE[kind] // MIB} MiB"
            for kind, n in sorted(counts.items())
            if kind in MEMORY_PER_NODE
        )
        raise ResourceLimitError(
            f"this dataflow's {len(spawned)} nodes need about {estimate // MIB} MiB ({parts}), "
            f"more than the {available // MIB} MiB of memory available on this machine; nothing "
            "was started. Run fewer nodes here: place some on another machine "
            "(`deploy: {machine: NAME}`), or merge Python nodes into one node with `operators`",
            limit="memory",
        )
    limit, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed, detail = descriptors_needed(flow, here, len(spawned))
    if needed > limit:
        which = f"the hard limit of {limit}" if limit == hard else f"the limit of {limit}"
        raise ResourceLimitError(
            f"this dataflow needs about {needed} open files ({detail}), more than {which} "
            f"(`ulimit -n`); nothing was started. Raise it in the shell that starts doradus: "
            f"`ulimit -n {needed}` (past the hard limit, `ulimit -Hn`, only root can: set `nofile` "
            "in /etc/security/limits.conf, or LimitNOFILE= for a systemd service)",
            limit="RLIMIT_NOFILE",
        )


def descriptors_needed(flow: Dataflow, here: Collection[str], spawned: int) -> tuple[int, str]:
    """Descriptors the daemon holds at once with every node running, and how they add up.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.model import Dataflow
        >>> needed, detail = descriptors_needed(Dataflow(path=Path("/tmp/df.yml"), nodes=()), set(), 3)
        >>> needed > 3 * FILES_PER_NODE, detail.split(",")[0]
        (True, '4 per node for 3 nodes')
    """
    pairs = {
        (inp.source.node, spec.id)
        for spec in flow.nodes
        for inp in spec.inputs.values()
        if isinstance(inp.source, NodeSource) and inp.source.node in here and spec.id in here
    }
    try:
        open_now = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_now = 16
    needed = FILES_PER_NODE * spawned + 2 * len(pairs) + open_now + FILES_RESERVED
    detail = f"{FILES_PER_NODE} per node for {spawned} nodes"
    if pairs:
        detail += f", {2 * len(pairs)} link ends"
    return needed, f"{detail}, {open_now + FILES_RESERVED} for the runtime itself"
