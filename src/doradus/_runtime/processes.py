"""What the runtime keeps about each node: its process, pipes, links, counters and how it ended.

`NodeProcess` is the daemon's record of one node, from the spawn request to its exit (every
part of the supervisor reads and updates it under the run's lock, `RunState.lock`);
`OutputPipe` one of its output pipes; `NodeResult` how it ended; `InputDrops` what one of its
input queues dropped over the run.

Example:
    >>> from doradus._dataflow.model import NodeSpec
    >>> proc = NodeProcess(NodeSpec(id="camera", kind="python", outputs=("image",)))
    >>> proc.in_barrier, proc.exited
    (True, False)
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from doradus._dataflow.model import NodeSpec
from doradus._runtime.stats import NodeStats, next_stats
from doradus._wire.control import StatsMessage
from doradus._wire.node_config import LinkConfig

if TYPE_CHECKING:
    from doradus._runtime.stdout_relay import StdoutRelay

TAIL_LINES = 20
"""Lines of a node's output kept for the summary of a failed run."""
DROP_POLICY = "drop_oldest"
"""The queue policy of an input unless its dataflow says otherwise."""


def end_reason(code: int) -> str:
    """How a process with exit ``code`` ended, in words (a negative code: the signal that ended it).

    Example:
        >>> end_reason(1), end_reason(-9), end_reason(0)
        ('exit status 1', 'killed by SIGKILL', 'exit status 0')
    """
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return f"killed by {name}"
    return f"exit status {code}"


@dataclass(frozen=True)
class InputDrops:
    """Messages an input's full queue dropped over a run, and those still queued when its node ended.

    Example:
        >>> InputDrops("detector", "image", "camera/frame", 12, 1).message
        'input detector/image dropped 12 messages (queue_size 1, drop_oldest)'
        >>> InputDrops("detector", "image", "camera/frame", 0, 10, undelivered=3).message
        'input detector/image: 3 messages still queued when the node ended were not delivered'
        >>> InputDrops("detector", "image", "camera/frame", 5, 10, shed=5).message.split(": ")[1]
        'detector held more of its shared memory than its shared_memory_pool_size)'
    """

    node: str
    input: str
    source: str
    dropped: int
    queue_size: int
    queue_policy: str = DROP_POLICY
    """``backpressure`` inputs drop only past 10 x ``queue_size`` (or where it is not applied)."""
    undelivered: int = 0
    """Messages still in the input's queue when its node ended (a stop, a crash): not delivered."""
    shed: int = 0
    """The part of ``dropped`` the sender dropped: the node held too much of its shared memory."""

    @property
    def message(self) -> str:
        """One line saying which input dropped how many messages, and why."""
        late = f"{self.undelivered} messages still queued when the node ended were not delivered"
        if not self.dropped:
            return f"input {self.node}/{self.input}: {late}"
        why = []
        if self.shed:
            sender = self.source.split("/")[0]
            why.append(
                f"{self.shed} by {sender}: {self.node} held more of its shared memory than its "
                "shared_memory_pool_size"
            )
        if self.dropped > self.shed:
            why.append(f"queue_size {self.queue_size}, {self.queue_policy}")
        text = f"input {self.node}/{self.input} dropped {self.dropped} messages ({'; '.join(why)})"
        return f"{text}; {late}" if self.undelivered else text

    @property
    def fields(self) -> dict[str, Any]:
        """The fields of the run's WARN record about it (``event: dropped``).

        Example:
            >>> InputDrops("detector", "image", "camera/frame", 12, 1).fields["queue_policy"]
            'drop_oldest'
        """
        return {
            "event": "dropped",
            "input": self.input,
            "source": self.source,
            "dropped": self.dropped,
            "queue_size": self.queue_size,
            "queue_policy": self.queue_policy,
            "undelivered": self.undelivered,
            "shed": self.shed,
        }


@dataclass(eq=False)
class OutputPipe:
    """One of a node's output pipes (stdout or stderr), read by the daemon's I/O thread."""

    proc: NodeProcess
    stream: str
    fd: int
    relay: StdoutRelay | None = None
    """Where stdout lines also go (``send_stdout_as``), until the node exits."""
    partial: bytes = b""
    traceback: list[str] = field(default_factory=list)
    """A Python traceback being gathered into one record."""
    registered: bool = False


@dataclass(eq=False)
class NodeProcess:
    """What the daemon knows about one node."""

    spec: NodeSpec
    pid: int | None = None
    """The node's process id (also its process group's), once started."""
    pipes: list[OutputPipe] = field(default_factory=list)
    """Its stdout and stderr pipes still open (a helper it started may hold them after it exits)."""
    conn: socket.socket | None = None
    requested: bool = False
    """The keeper was asked to start it."""
    answered: bool = False
    """The request was answered: started, or failed."""
    registered: bool = False
    ready: bool = False
    """The node's links are open (subscriptions confirmed): the start may count it."""
    exited: bool = False
    returncode: int | None = None
    killed: bool = False
    signalled: set[int] = field(default_factory=set)
    """Signals `LocalDaemon.kill` sent it."""
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    log: IO[str] | None = None
    log_lock: threading.Lock = field(default_factory=threading.Lock)
    readers: list[threading.Thread] = field(default_factory=list)
    """Threads reading its control socket."""
    links: list[tuple[LinkConfig, socket.socket | None]] = field(default_factory=list)
    """(link description for the node, its socket end for links of socket pairs, else None)."""
    watched: bool = False
    """A reader thread owns ``conn`` (and closes it when the node has gone)."""
    stats: NodeStats | None = None
    """The node's latest ``stats`` report (see `Node`), with rates computed on arrival."""
    paused: bool = False
    """Its inputs' messages are held (`doradus._runtime.actions`); reported as state ``paused``."""
    restarting: bool = False
    """Being stopped and started again (`doradus._runtime.restart`): its exit is not its end."""
    restarts: int = 0
    """How many times it was restarted in this run."""
    stop_requested: bool = False
    """`doradus._runtime.node_stop.stop_node` ended it for good: its end is ``stopped``."""
    acked: set[str] = field(default_factory=set)
    """Peers whose ``peer_restarting`` this node acknowledged (while they restart)."""
    env_override: dict[str, str] = field(default_factory=dict)
    """Variables a restart set, over the dataflow's and the run's."""
    started_at: float = 0.0
    """When its process started (`time.monotonic`)."""
    reason: str | None = None
    """Why it is in its state, when that needs saying (`doradus._runtime.liveness`)."""
    liveness: str | None = None
    """Why the watchdog ended it (`doradus._runtime.liveness`): its end is a failure."""

    @property
    def ended_by_us(self) -> bool:
        """Whether its end was asked for (a stop, or signals past a grace), not a failure.

        Example:
            >>> from doradus._dataflow.model import NodeSpec
            >>> NodeProcess(NodeSpec(id="n", kind="python"), killed=True).ended_by_us
            True
        """
        return (self.killed and self.liveness is None) or self.stop_requested

    def record_stats(self, message: StatsMessage) -> None:
        """Keep a ``stats`` report and derive the input and output rates since the previous one."""
        self.stats = next_stats(self.spec, message, self.stats, time.monotonic())

    @property
    def in_barrier(self) -> bool:
        """Whether the start waits for this node to register or exit.

        Not a node whose only output carries its stdout: the daemon sends those lines, so
        the node need not register (a program that never does and runs on would hold the
        start forever).
        """
        own = [o for o in self.spec.outputs if o != self.spec.send_stdout_as]
        return self.spec.kind != "dynamic" and bool(self.spec.inputs or own)

    def write_raw(self, line: str) -> None:
        """Append one line to the node's own log file (``log_<id>.txt``), while it is open."""
        with self.log_lock:
            if self.log is not None and not self.log.closed:
                self.log.write(line + "\n")
                self.log.flush()

    def close_log(self) -> None:
        """Close the node's log file (once its pipes are, or its start failed)."""
        with self.log_lock:
            if self.log is not None:
                self.log.close()


@dataclass(frozen=True)
class NodeResult:
    """How one node ended."""

    node_id: str
    returncode: int | None
    killed: bool
    tail: tuple[str, ...]
    ended_because: str | None = None
    """Why the watchdog ended it (`doradus._runtime.liveness`), if it did."""

    @property
    def ok(self) -> bool:
        """Exited with status 0."""
        return self.returncode == 0
