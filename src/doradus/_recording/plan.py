"""The dataflows `doradus record` and `doradus replay` run, and their nodes' configuration.

`plan_recording` adds the recorder node (`recorder_node`) to a dataflow, subscribed to each
recorded output with a queue of ``queue_size`` messages. `plan_replay` swaps nodes for
replayers (`replayer_node`) that publish what the recording holds of their outputs; with
``speed`` 0 the queues of the inputs they feed grow to hold every replayed message, and every
input further downstream gets ``queue_policy: backpressure``, so none is dropped however slow
the receivers. Each node's configuration is a JSON file in the run's
``out/<run-id>/``.

Example::

    plan = plan_recording(flow, output=Path("run.mcap"), run_id=run_id)
    outcome = run_dataflow(plan.flow, run_id=run_id)
"""

from __future__ import annotations

import dataclasses
import fnmatch
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from doradus._dataflow.model import Dataflow, InputSpec, NodeSource, NodeSpec, TimerSource
from doradus._recording.channels import topic_of
from doradus._recording.config import (
    Compression,
    RecordedTopic,
    RecorderConfig,
    ReplayerConfig,
    write_config,
)
from doradus._recording.errors import RecordingError, require_mcap
from doradus._recording.reader import Recording
from doradus._recording.writer import DEFAULT_CHUNK_SIZE, DEFAULT_FLUSH_INTERVAL

RECORDER_ID = "doradus-recorder"
DEFAULT_QUEUE_SIZE = 1000
"""Messages each recorded output may queue at the recorder before the oldest is dropped."""
TICK_NS = 100_000_000
"""The replayer's own timer (it has no other input): how often it looks for Stop while it waits."""


@dataclass(frozen=True)
class RecordPlan:
    """The dataflow with its recorder, and what the recorder records.

    Example:
        >>> RecordPlan(Dataflow(Path("d.yml"), ()), "doradus-recorder", ("a/o",)).topics
        ('a/o',)
    """

    flow: Dataflow
    recorder: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class ReplayPlan:
    """The dataflow with replayers, and the topics each replaced node publishes.

    Example:
        >>> ReplayPlan(Dataflow(Path("d.yml"), ()), {"camera": ("camera/image",)}).replaced
        ('camera',)
    """

    flow: Dataflow
    topics: dict[str, tuple[str, ...]]

    @property
    def replaced(self) -> tuple[str, ...]:
        """The ids of the replaced nodes.

        Example:
            >>> ReplayPlan(Dataflow(Path("d.yml"), ()), {"a": (), "b": ("b/o",)}).replaced
            ('a', 'b')
        """
        return tuple(self.topics)


LOSSLESS_WAIT = 300.0
"""Seconds a sender waits for room downstream at ``--speed 0`` before it drops (counted)."""


def all_topics(flow: Dataflow) -> list[str]:
    """Every output of the dataflow as a topic ``NODE/OUTPUT``, in dataflow order.

    Example:
        >>> flow = Dataflow(Path("d.yml"), (NodeSpec("cam", "python", outputs=("image", "depth")),))
        >>> all_topics(flow)
        ['cam/image', 'cam/depth']
    """
    return [topic_of(node.id, output) for node in flow.nodes for output in node.outputs]


def select_topics(available: Sequence[str], patterns: Sequence[str], what: str = "output") -> list[str]:
    """The topics named by ``patterns``: ``NODE/OUTPUT``, ``NODE`` (all its outputs) or a glob.

    Raises:
        RecordingError: a pattern names nothing (the message lists what there is).

    Example:
        >>> select_topics(["cam/image", "cam/depth", "imu/reading"], ["cam"])
        ['cam/image', 'cam/depth']
        >>> select_topics(["cam/image", "imu/reading"], ["*/reading"])
        ['imu/reading']
    """
    if not patterns:
        return list(available)
    chosen: list[str] = []
    for pattern in patterns:
        found = [t for t in available if fnmatch.fnmatchcase(t, pattern) or t.split("/", 1)[0] == pattern]
        if not found:
            raise RecordingError(
                f"--topics {pattern!r} names no {what}",
                fix=f"choose among {', '.join(available) or 'none'} (NODE/OUTPUT, NODE, or a glob)",
            )
        chosen.extend(t for t in found if t not in chosen)
    return [t for t in available if t in chosen]


def plan_recording(
    flow: Dataflow,
    *,
    output: Path,
    run_id: str,
    topics: Sequence[str] = (),
    compression: Compression = "zstd",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    queue_size: int = DEFAULT_QUEUE_SIZE,
) -> RecordPlan:
    """``flow`` with a recorder node subscribed to ``topics`` (every output when empty).

    Writes the recorder's configuration to ``out/<run_id>/recorder.json`` beside the dataflow.

    Raises:
        RecordingError: the dataflow has no output, a pattern names none, or ``mcap`` is missing.

    Example::

        plan = plan_recording(flow, output=Path("run.mcap").resolve(), run_id="r1", topics=["camera"])
    """
    require_mcap()  # before the run starts, not in the recorder once it runs
    chosen = select_topics(all_topics(flow), topics)
    if not chosen:
        raise RecordingError(f"dataflow {flow.name!r} has no output to record", fix="declare `outputs:`")
    recorder = _free_id(flow, RECORDER_ID)
    inputs: dict[str, InputSpec] = {}
    formats = {}
    recorded: dict[str, RecordedTopic] = {}
    for topic in chosen:
        node_id, output_id = _split(flow, topic)
        inputs[topic] = InputSpec(topic, NodeSource(node_id, output_id), queue_size=queue_size)
        fmt = flow.node(node_id).output_formats.get(output_id)
        recorded[topic] = {"node": node_id, "output": output_id, "format": None}
        if fmt is not None and fmt.name != "arrow":
            formats[topic] = fmt
            recorded[topic]["format"] = fmt.to_json()
    config: RecorderConfig = {
        "output": str(output.resolve()),
        "compression": compression,
        "chunk_size": chunk_size,
        "flush_interval": flush_interval,
        "dataflow_path": str(flow.path.resolve()),
        "dataflow_name": flow.name,
        "dataflow_text": flow.text,
        "run_id": run_id,
        "topics": recorded,
    }
    path = write_config(_run_folder(flow, run_id) / "recorder.json", config)
    spec = _module_node(recorder, "doradus._recording.recorder_node", path)
    spec = dataclasses.replace(spec, inputs=inputs, input_formats=formats)
    return RecordPlan(dataclasses.replace(flow, nodes=(*flow.nodes, spec)), recorder, tuple(chosen))


def plan_replay(
    flow: Dataflow,
    recording: Recording,
    *,
    run_id: str,
    replace: Sequence[str] = (),
    topics: Sequence[str] = (),
    speed: float = 1.0,
    loop: bool = False,
) -> ReplayPlan:
    """``flow`` with the nodes ``replace`` names (default: its recorded sources) swapped for replayers.

    Raises:
        RecordingError: a node is not in the dataflow or has no recorded output, a topic
            pattern names nothing, or ``speed`` 0 is asked with ``loop``.

    Example::

        plan = plan_replay(flow, recording, run_id="r1", replace=["camera"], speed=2.0)
    """
    if speed < 0 or (speed == 0 and loop):
        raise RecordingError(
            "--speed 0 with --loop would queue without end" if speed == 0 else "--speed must be 0 or more",
            fix="give a speed above 0 (1.0 is the recorded pace)",
        )
    recorded = [t for t in recording.topics() if t in set(all_topics(flow))]
    chosen = set(select_topics(recorded, topics, "recorded output of this dataflow"))
    by_node = _replaced(flow, recorded, replace)
    per_node = {node: tuple(t for t in found if t in chosen) for node, found in by_node.items()}
    wanted = {t for found in per_node.values() for t in found}
    first = next(iter(recording.messages(wanted)), None) if wanted else None
    start = first.publish_time if first is not None else 0
    counts = _counts(recording)
    nodes = []
    for spec in flow.nodes:
        if spec.id in per_node:
            nodes.append(_replayer(flow, spec, recording, per_node[spec.id], run_id, speed, loop, start))
        elif speed == 0:
            nodes.append(_unbounded_queues(spec, wanted, counts))
        else:
            nodes.append(spec)
    return ReplayPlan(dataclasses.replace(flow, nodes=tuple(nodes)), per_node)


def _replaced(flow: Dataflow, recorded: list[str], replace: Sequence[str]) -> dict[str, list[str]]:
    """The nodes to replace and their recorded topics (default: recorded nodes fed by no node)."""
    by_node: dict[str, list[str]] = {}
    for topic in recorded:
        by_node.setdefault(topic.split("/", 1)[0], []).append(topic)
    if not replace:
        sources = [
            n.id for n in flow.nodes if not any(isinstance(i.source, NodeSource) for i in n.inputs.values())
        ]
        replace = [n for n in sources if n in by_node]
        if not replace:
            raise RecordingError(
                "no source node of the dataflow has recorded outputs", fix="name nodes with --replace"
            )
    found = {}
    for node_id in replace:
        if node_id not in {n.id for n in flow.nodes}:
            raise RecordingError(f"--replace {node_id!r}: the dataflow has no such node")
        if node_id not in by_node:
            raise RecordingError(
                f"--replace {node_id!r}: the recording holds no output of it",
                fix=f"recorded nodes: {', '.join(sorted(by_node)) or 'none'}",
            )
        found[node_id] = by_node[node_id]
    return found


def _replayer(
    flow: Dataflow,
    spec: NodeSpec,
    recording: Recording,
    topics: tuple[str, ...],
    run_id: str,
    speed: float,
    loop: bool,
    start: int,
) -> NodeSpec:
    outputs = {t: t.split("/", 1)[1] for t in topics}
    config: ReplayerConfig = {
        "recording": str(recording.path.resolve()),
        "speed": speed,
        "loop": loop,
        "start_ns": start,
        "topics": outputs,
        "formats": {o: f.to_json() for o, f in spec.output_formats.items() if f.name != "arrow"},
    }
    path = write_config(_run_folder(flow, run_id) / f"replayer-{spec.id}.json", config)
    replayer = _module_node(spec.id, "doradus._recording.replayer_node", path)
    tick = InputSpec("tick", TimerSource(f"dora/timer/millis/{TICK_NS // 1_000_000}", TICK_NS), queue_size=1)
    return dataclasses.replace(
        replayer,
        inputs={"tick": tick},
        outputs=spec.outputs,
        output_formats=spec.output_formats,
        communication=spec.communication,
        location=spec.location,
    )


def _unbounded_queues(spec: NodeSpec, replayed: set[str], counts: dict[str, int]) -> NodeSpec:
    """``spec`` losing nothing at ``--speed 0``.

    Each input a replayed topic feeds can queue all of that topic's messages; each input another
    node feeds gets ``queue_policy: backpressure`` (its sender waits for room, up to
    `LOSSLESS_WAIT` seconds).
    """
    inputs = {}
    for input_id, inp in spec.inputs.items():
        source = inp.source
        topic = str(source) if isinstance(source, NodeSource) else ""
        if topic in replayed:
            inp = dataclasses.replace(inp, queue_size=max(inp.queue_size, counts.get(topic, 0) + 1))
        elif topic:
            inp = dataclasses.replace(
                inp,
                queue_policy="backpressure",
                backpressure_timeout=max(inp.backpressure_timeout, LOSSLESS_WAIT),
            )
        inputs[input_id] = inp
    return dataclasses.replace(spec, inputs=inputs)


def _counts(recording: Recording) -> dict[str, int]:
    counts: dict[str, int] = {}
    for channel in recording.data_channels():
        counts[channel.topic] = counts.get(channel.topic, 0) + channel.messages
    return counts


def _module_node(node_id: str, module: str, config: Path) -> NodeSpec:
    """A node running ``python -m module CONFIG`` with this interpreter."""
    return NodeSpec(
        id=node_id,
        kind="executable",
        path=module,
        executable=sys.executable,
        args=("-m", module, str(config)),
    )


def _split(flow: Dataflow, topic: str) -> tuple[str, str]:
    """The node and output of a topic (outputs may hold ``/``: ``op/out`` of an operator)."""
    for node in flow.nodes:
        prefix = node.id + "/"
        if topic.startswith(prefix) and topic[len(prefix) :] in node.outputs:
            return node.id, topic[len(prefix) :]
    raise RecordingError(f"{topic!r} is no output of the dataflow")


def _free_id(flow: Dataflow, wanted: str) -> str:
    taken = {n.id for n in flow.nodes}
    found, n = wanted, 1
    while found in taken:
        n += 1
        found = f"{wanted}-{n}"
    return found


def _run_folder(flow: Dataflow, run_id: str) -> Path:
    return flow.working_dir / "out" / run_id
