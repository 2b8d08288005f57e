"""What a node learns from its daemon: where to register, and its configuration.

A node Doradus spawns finds its daemon through `ENV_CONFIG` (a `NodeEnvironment`); a
``path: dynamic`` node finds it in the run folder's ``dynamic.json`` (a `DynamicNodes`). Once
registered, it gets its `NodeConfig` (the ``config`` message of `doradus._wire.control`): its
inputs (`InputConfig`), outputs, formats and links (`LinkConfig`).

The shapes are what the two ends promise each other, not a validation: JSON is read as it
came. (Which keys are ``NotRequired`` says ``typing.get_type_hints(shape,
include_extras=True)``: under postponed annotations Python 3.11's ``__optional_keys__`` does
not see them.)

Example:
    >>> link: LinkConfig = {"peer": "cam", "dir": "in", "routes": {"image": ["frame"]}, "backend": "shm"}
    >>> sorted(link)
    ['backend', 'dir', 'peer', 'routes']
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

ENV_CONFIG = "DORADUS_NODE_CONFIG"
"""The environment variable holding a spawned node's `NodeEnvironment` (JSON)."""


class NodeEnvironment(TypedDict):
    """What `ENV_CONFIG` holds for a node the daemon spawned: where to register, and as whom.

    Example:
        >>> env: NodeEnvironment = {"control": "/run/c.sock", "node_id": "camera", "run_id": "r1"}
        >>> env["node_id"]
        'camera'
    """

    control: str
    node_id: str
    run_id: str


class DynamicNodes(TypedDict):
    """A run folder's ``dynamic.json``: the ``path: dynamic`` nodes that wait for their process.

    Example:
        >>> waiting: DynamicNodes = {"dataflow": "/f.yml", "nodes": ["ui"], "control": "/c.sock"}
        >>> "ui" in waiting["nodes"]
        True
    """

    dataflow: str
    nodes: list[str]
    control: str


class InputConfig(TypedDict):
    """One input of a node: where it reads from and how much it queues.

    ``kind`` is ``timer`` (``interval_ns`` set), ``node`` (another node's output; ``format``
    set when it is not Arrow: `doradus.codecs.FormatSpec.to_json`'s form) or ``logs`` (log
    records of the run). ``timeout`` is the input's ``input_timeout`` in seconds, when set.

    Example:
        >>> tick: InputConfig = {
        ...     "kind": "timer", "queue_size": 10, "policy": "drop-oldest",
        ...     "source": "dora/timer/millis/100", "interval_ns": 100_000_000,
        ... }
        >>> tick["interval_ns"] // 1_000_000
        100
    """

    kind: Literal["timer", "node", "logs"]
    queue_size: int
    policy: str
    source: str
    interval_ns: NotRequired[int]
    format: NotRequired[dict[str, Any]]
    timeout: NotRequired[float]


class LinkConfig(TypedDict):
    """One link of a node, as the daemon wired it (`doradus.backends.LinkSpec` once opened).

    ``dir`` ``out``: this node sends ``outputs`` to ``peer``; ``in``: ``peer`` sends to this
    node and ``routes`` maps its output ids to this node's input ids. ``options`` are the
    backend's own (addresses, keys); a ``shm`` link has none and its socket end rides along.
    ``backpressure`` (``out`` links only): per output, the receiver's ``queue_policy:
    backpressure`` inputs it feeds and their ``[queue_size, backpressure_timeout]``; present
    only when the link's backend applies backpressure.
    ``held``: ``peer`` may be restarted when it ends (its ``restart_policy``). On an ``in`` link
    the end of the link does not close the inputs it feeds until the daemon says ``peer_gone``
    or ``peer_failed``; on an ``out`` link what is not sent to ``peer`` while it is down is
    counted (``peer_restart_drops``).
    ``hold_limit`` (``out`` links of the ``shm`` backend): the sending node's
    ``shared_memory_pool_size``, the most of its shared memory the receiver may hold.

    Example:
        >>> link: LinkConfig = {"peer": "cam", "dir": "in", "routes": {"image": ["frame"]}, "backend": "shm"}
        >>> link["routes"]["image"]
        ['frame']
    """

    peer: str
    dir: Literal["in", "out"]
    backend: str
    outputs: NotRequired[list[str]]
    routes: NotRequired[dict[str, list[str]]]
    options: NotRequired[dict[str, Any]]
    held: NotRequired[bool]
    backpressure: NotRequired[dict[str, dict[str, list[float]]]]
    hold_limit: NotRequired[int]


class NodeConfig(TypedDict):
    """Everything a node learns from its daemon when it registers (the ``config`` message).

    ``descriptor`` is the run folder's copy of the dataflow text (a daemon that keeps none
    leaves it out: the node reads ``dataflow``). ``output_formats`` holds the outputs that are
    not Arrow, in `doradus.codecs.FormatSpec.to_json`'s form. ``backends`` are the names of the
    backends the node's links use. ``stdout_output`` is the output the daemon sends the node's
    stdout lines on (``send_stdout_as``), which the node itself may not send on.

    Example:
        >>> import typing
        >>> hints = typing.get_type_hints(NodeConfig, include_extras=True)
        >>> [key for key, hint in hints.items() if typing.get_origin(hint) is NotRequired]
        ['descriptor']
    """

    node_id: str
    run_id: str
    dataflow: str
    descriptor: NotRequired[str]
    dataflow_name: str
    machine: str
    inputs: dict[str, InputConfig]
    outputs: list[str]
    output_formats: dict[str, dict[str, Any]]
    links: list[LinkConfig]
    backends: list[str]
    restart_count: int
    stdout_output: str | None
