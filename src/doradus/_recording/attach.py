"""``doradus record --attach``: recording a dataflow that already runs, through the topic taps.

`record_attached` asks the run's topic socket (`RunSocket`: what ``doradus topic`` speaks,
`doradus._runtime.taps`) for its outputs and its dataflow file, opens a ``full`` tap on each
recorded output (`tap_reader.TopicTap`) and writes what comes to an MCAP file laid out as the
foreground recorder's (`writer.RecordingWriter`): one channel per output, an Arrow IPC stream
per message, the dataflow file attached. It records until ``stop`` is set (Ctrl-C, SIGTERM),
``duration`` has passed or the dataflow ends, then finishes the file. A tap ends with the
process it was handed to: when a recorded node restarts, its output is tapped again once it
runs (the messages in between are not recorded).

Writing happens on the calling thread; each tap's messages are made ready on its own reading
thread, into one bounded `tap_reader.Inbox`. What the recorder misses is counted per topic
(the tap's skips at the node, the inbox's drops) and written in the file's ``doradus.recording``
metadata, which ``doradus recording info`` shows.

Example::

    with TopicSocket(run.socket) as conn:   # doradus._control.topics
        ...
    outcome = record_attached(lambda: TopicSocket(run.socket), AttachSettings(Path("run.mcap")), stop)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from doradus._recording.config import Compression
from doradus._recording.errors import RecordingError
from doradus._recording.plan import DEFAULT_QUEUE_SIZE, select_topics
from doradus._recording.tap_reader import Inbox, Received, TopicTap
from doradus._recording.writer import DEFAULT_CHUNK_SIZE, DEFAULT_FLUSH_INTERVAL, RecordingWriter
from doradus._runtime.topic_messages import DataflowFile, Hello, Tapped, TopicError, TopicFacts
from doradus._wire.format_spec import FormatSpec

DEFAULT_QUEUE_BYTES = 256 << 20
"""Most bytes of messages waiting for the writer; past it the oldest are dropped (counted)."""
CHECK_INTERVAL = 0.5
"""Seconds between two looks at the run: is it still there, has a recorded node restarted."""
POLL = 0.25
"""Longest wait for a message before looking at ``stop`` and the clock again."""
LIVE_STATES = frozenset({"running", "starting", "restarting"})
"""A node in one of these states may still send."""
ENDED = "dataflow ended"
"""Why a recording ended: the run's topic socket no longer answers."""
NODES_ENDED = "nodes ended"
"""Why a recording ended: every recorded node has ended, while others still run."""


class RunSocket(Protocol):
    """A connection to a run's topic socket (`doradus._control.topics.TopicSocket`).

    Each method raises `TopicError` when the run refuses or no longer answers.
    """

    def hello(self) -> Hello:
        """Which run this is."""

    def topics(self) -> list[TopicFacts]:
        """Every output of the dataflow."""

    def dataflow(self) -> DataflowFile:
        """The dataflow file the run was started with."""

    def tap(self, node: str, output: str, mode: str) -> tuple[Tapped, int]:
        """A new tap: its answer and its reading end's descriptor (the caller's)."""

    def close(self) -> None:
        """Close the connection."""


@dataclass(frozen=True)
class AttachSettings:
    """What ``record --attach`` writes, and for how long.

    Example:
        >>> AttachSettings(Path("run.mcap"), topics=("camera",), duration=10.0).queue_size
        1000
    """

    output: Path
    topics: tuple[str, ...] = ()
    """``NODE/OUTPUT``, ``NODE`` or globs; empty: every output that can be tapped here."""
    compression: Compression = "zstd"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    queue_size: int = DEFAULT_QUEUE_SIZE
    queue_bytes: int = DEFAULT_QUEUE_BYTES
    duration: float | None = None


@dataclass(frozen=True)
class AttachOutcome:
    """What a recording of a running dataflow holds, and why it ended.

    ``ended`` is ``stopped`` (Ctrl-C, SIGTERM), ``duration``, ``dataflow ended`` or ``nodes
    ended`` (every recorded node ended, others run on); ``skipped``
    the outputs not recorded and why; ``dropped`` the messages each recorded output lost (the
    recorder behind); ``retapped`` how many times a restarted node's output was tapped again.

    Example:
        >>> outcome = AttachOutcome(Path("r.mcap"), "r1", "demo", ("a/x",), {}, {"a/x": 3}, {}, "stopped")
        >>> outcome.messages
        3
    """

    path: Path
    run_id: str
    dataflow: str
    topics: tuple[str, ...]
    skipped: dict[str, str]
    counts: dict[str, int]
    dropped: dict[str, int]
    ended: str
    retapped: int = 0
    errors: tuple[str, ...] = ()
    peak_queue_bytes: int = 0

    @property
    def messages(self) -> int:
        """Messages recorded, every topic together."""
        return sum(self.counts.values())


def choose_topics(facts: Sequence[TopicFacts], patterns: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The outputs to record (those ``patterns`` name that can be tapped here), and the others' reasons.

    Raises:
        RecordingError: a pattern names no output, or none of those named can be tapped here.

    Example:
        >>> def fact(topic, why=None):
        ...     return {"topic": topic, "tappable": why}
        >>> choose_topics([fact("a/x"), fact("b/y", "node 'b' runs on machine 'm2'")], [])
        (['a/x'], {'b/y': "node 'b' runs on machine 'm2'"})
    """
    chosen = select_topics([f["topic"] for f in facts], patterns)
    why = {f["topic"]: f["tappable"] for f in facts}
    skipped = {t: str(why[t]) for t in chosen if why[t] is not None}
    recorded = [t for t in chosen if why[t] is None]
    if not recorded:
        reasons = "; ".join(f"{t}: {r}" for t, r in skipped.items()) or "the dataflow has no output"
        raise RecordingError(
            f"no output can be recorded here ({reasons})",
            fix="run `doradus record --attach` on the machine of the nodes, or `doradus record FILE` "
            "to run the dataflow with a recorder node",
        )
    return recorded, skipped


@dataclass
class _Taps:
    """The taps of one recording, by topic: opened, watched, opened again after a restart."""

    connect: Callable[[], RunSocket]
    conn: RunSocket
    inbox: Inbox
    nodes: dict[str, tuple[str, str]]
    """topic → (node, output)."""
    notice: Callable[[str], None]
    live: dict[str, TopicTap] = field(default_factory=dict)
    formats: dict[str, FormatSpec] = field(default_factory=dict)
    """The data format of each output that is not Arrow (known once tapped)."""
    opened: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def open_missing(self, facts: Sequence[TopicFacts]) -> None:
        """Tap each recorded output whose tap is missing (or ended) and whose node runs."""
        states = {f["topic"]: f["state"] for f in facts}
        for topic, (node, output) in self.nodes.items():
            tap = self.live.get(topic)
            if tap is not None and not tap.ended.is_set():
                continue
            if states.get(topic) != "running":
                continue
            if tap is not None:
                self._retire(topic)
            try:
                tapped, fd = self.conn.tap(node, output, "full")
            except TopicError:
                continue  # it stopped meanwhile: the next look tries again
            self.live[topic] = tap = TopicTap(fd, node, output, tapped["format"], self.inbox)
            if tap.spec is not None:
                self.formats[topic] = tap.spec
            self.opened[topic] = self.opened.get(topic, 0) + 1
            if self.opened[topic] > 1:
                self.notice(f"{topic}: node {node!r} runs again: recording its new process")

    def look(self) -> str | None:
        """Look at the run (tap what runs again); why nothing more can come, or None."""
        facts = self._facts()
        if facts is None:
            return ENDED
        self.open_missing(facts)
        if any(not tap.ended.is_set() for tap in self.live.values()):
            return None
        states = {f["topic"]: f["state"] for f in facts}
        return None if any(states.get(topic) in LIVE_STATES for topic in self.nodes) else NODES_ENDED

    def _facts(self) -> list[TopicFacts] | None:
        """The run's outputs now; None when the run no longer answers (it ended)."""
        for attempt in range(2):
            try:
                return self.conn.topics()
            except (TopicError, OSError):
                if attempt:
                    return None
            try:  # the connection may have been closed for silence: once more on a new one
                self.conn.close()
                self.conn = self.connect()
            except (TopicError, OSError):
                return None
        return None

    def _retire(self, topic: str) -> None:
        tap = self.live.pop(topic)
        tap.close()
        self.errors.extend(tap.errors)

    def close(self) -> None:
        """Close every tap (their nodes drop them) and the connection."""
        for topic in list(self.live):
            self._retire(topic)
        self.conn.close()

    @property
    def retapped(self) -> int:
        return sum(max(0, n - 1) for n in self.opened.values())


def record_attached(
    connect: Callable[[], RunSocket],
    settings: AttachSettings,
    stop: threading.Event,
    notice: Callable[[str], None] = lambda _line: None,
) -> AttachOutcome:
    """Record the run ``connect`` reaches until ``stop``, ``settings.duration`` or its end.

    ``notice`` receives lines worth showing while it records (a node tapped again). The file is
    finished however it ends; a process killed meanwhile leaves it readable up to its last
    complete chunk.

    Raises:
        RecordingError: nothing can be recorded (a pattern names no output, none can be tapped
            here), the file cannot be written, or ``mcap`` is missing.
        TopicError: the run does not answer.

    Example::

        outcome = record_attached(lambda: TopicSocket(run.socket), AttachSettings(Path("run.mcap")), stop)
    """
    conn = connect()
    try:
        hello, facts, flow = conn.hello(), conn.topics(), conn.dataflow()
        recorded, skipped = choose_topics(facts, settings.topics)
        writer = RecordingWriter(
            settings.output,
            compression=settings.compression,
            chunk_size=settings.chunk_size,
            flush_interval=settings.flush_interval,
        )
    except BaseException:
        conn.close()
        raise
    writer.attach_dataflow(Path(flow["path"]), flow["text"], name=hello["dataflow"], run_id=hello["run_id"])
    nodes = {f["topic"]: (f["node"], f["output"]) for f in facts if f["topic"] in recorded}
    inbox = Inbox(max_messages=settings.queue_size, max_bytes=settings.queue_bytes)
    taps = _Taps(connect, conn, inbox, nodes, notice)
    try:
        taps.open_missing(facts)
        ended = _write_until_done(writer, taps, inbox, settings.duration, stop)
    finally:
        taps.close()
        while (left := inbox.take(0)) is not None:
            _write(writer, taps, left)
        dropped = {t: inbox.dropped.get(t, 0) for t in recorded}
        writer.finish(dropped)
    return AttachOutcome(
        path=settings.output,
        run_id=hello["run_id"],
        dataflow=hello["dataflow"],
        topics=tuple(recorded),
        skipped=skipped,
        counts={t: writer.counts.get(t, 0) for t in recorded},
        dropped=dropped,
        ended=ended,
        retapped=taps.retapped,
        errors=tuple(taps.errors),
        peak_queue_bytes=inbox.peak_bytes,
    )


def _write_until_done(
    writer: RecordingWriter,
    taps: _Taps,
    inbox: Inbox,
    duration: float | None,
    stop: threading.Event,
) -> str:
    """Write what comes until ``stop``, ``duration`` or the run's end; which of them it was."""
    now = time.monotonic()
    deadline = None if duration is None else now + duration
    next_look = now + CHECK_INTERVAL
    while True:
        if stop.is_set():
            return "stopped"
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return "duration"
        if now >= next_look:
            if (why := taps.look()) is not None:
                return why
            next_look = time.monotonic() + CHECK_INTERVAL
        due = writer.flush_due()
        waits = [POLL, next_look - now] + ([] if deadline is None else [deadline - now])
        message = inbox.take(max(0.0, min(waits if due is None else [*waits, due])))
        if message is not None:
            _write(writer, taps, message)
        writer.flush_if_due()


def _write(writer: RecordingWriter, taps: _Taps, message: Received) -> None:
    """One message into the file, on its output's channel."""
    node, output = taps.nodes[message.topic]
    if isinstance(message.data, bytes):
        spec = taps.formats[message.topic]  # set when its tap opened, before any message came
        writer.add_encoded(
            node, output, spec, message.data, message.metadata, message.log_time, message.publish_time
        )
    else:
        writer.add_stored(
            node, output, message.data, message.metadata, message.log_time, message.publish_time
        )
