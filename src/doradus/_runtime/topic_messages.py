"""What ``doradus topic`` and a run's topic socket say to each other, and the error they share.

A run's supervisor listens on a ``SOCK_SEQPACKET`` Unix socket in its private runtime folder
(`doradus._runtime.taps.TapServer`) and names it in ``topics.json`` there (`POINTER_FILE`).
``doradus topic`` on the same machine connects and sends JSON objects, one per datagram
(`doradus._wire.control.send_json`); each request has an ``op`` and gets one answer:

- ``hello`` → `Hello`: the run, its dataflow, this machine, the nodes running here;
- ``topics`` → `TopicList`: every output of the dataflow (`TopicFacts`);
- ``tap`` (`TapRequest`) → `Tapped`, with the reading end of a new tap attached
  (``SCM_RIGHTS``): the node was handed the other end (`doradus.backends._shm_taps`);
- ``pub`` (`PubRequest`) → `Published`: the message went to the output's receivers here;
- ``dataflow`` → `DataflowFile`: the dataflow file the run was started with (``doradus record
  --attach`` keeps it in the recording).

A request that cannot be served gets `Refusal` instead (``op`` ``error``): the cause and
the fix, which the client raises as `TopicError`.

Example:
    >>> request: TapRequest = {"op": "tap", "node": "camera", "output": "image", "mode": "full"}
    >>> request["mode"]
    'full'
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from doradus._exceptions import DoradusError

SOCKET_NAME = "topics.sock"
"""The topic socket's file, in the run's private runtime folder (or a short one: see `POINTER_FILE`)."""
POINTER_FILE = "topics.json"
"""In the run's runtime folder: ``{"socket": PATH, "run_id": ..., "pid": ...}``, how clients find it."""


class TopicError(DoradusError):
    """A topic command cannot be done: the message says why, ``fix`` what to do.

    Example:
        >>> str(TopicError("no node 'x' in dataflow 'demo'", "see `doradus topic list`"))
        "no node 'x' in dataflow 'demo'"
    """

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


class Hello(TypedDict):
    """The answer to ``hello``: which run this socket serves.

    Example:
        >>> Hello(op="hello", run_id="r1", dataflow="demo", machine="m1", pid=42, nodes=["a"])["dataflow"]
        'demo'
    """

    op: Literal["hello"]
    run_id: str
    dataflow: str
    machine: str
    pid: int
    nodes: list[str]
    """The nodes placed on this machine."""


class OutputCounters(TypedDict):
    """An output's counters as its node last reported them (every second).

    ``at`` is when that report arrived (`time.monotonic` of this machine), for rates
    between two reports.

    Example:
        >>> OutputCounters(sent=10, bytes=80, at=12.5)["sent"]
        10
    """

    sent: int
    bytes: int
    at: float


class TopicFacts(TypedDict):
    """One output of the dataflow: who sends it, in what format, who reads it, how it travels.

    ``topic`` is ``NODE/OUTPUT``; ``format`` the data format's name and ``schema`` its schema
    file and type (``reading.avsc``, ``reading.capnp:Reading``; None for Arrow); ``machine``
    where the publisher runs; ``state`` its state there (``running``, ``exited``, or
    ``elsewhere`` for a node of another machine); ``subscribers`` the ``NODE/INPUT`` reading
    it; ``backend`` what carries its edges; ``counters`` None until the node reported.

    Example:
        >>> facts = TopicFacts(topic="cam/image", node="cam", output="image", format="arrow",
        ...                    schema=None, machine="m1", state="running", subscribers=["det/frames"],
        ...                    backend="shm", tappable=None, counters=None)
        >>> facts["subscribers"]
        ['det/frames']
    """

    topic: str
    node: str
    output: str
    format: str
    schema: str | None
    machine: str
    state: str
    subscribers: list[str]
    backend: str
    tappable: str | None
    """None when ``topic echo`` can read it here; else why not."""
    counters: OutputCounters | None


class TopicList(TypedDict):
    """The answer to ``topics``.

    Example:
        >>> TopicList(op="topics", topics=[])["topics"]
        []
    """

    op: Literal["topics"]
    topics: list[TopicFacts]


class TapRequest(TypedDict):
    """``tap``: open a tap on one output; ``mode`` ``full`` (the messages) or ``headers`` (records).

    Example:
        >>> TapRequest(op="tap", node="cam", output="image", mode="headers")["op"]
        'tap'
    """

    op: Literal["tap"]
    node: str
    output: str
    mode: str


class Tapped(TypedDict):
    """The answer to ``tap``, with the tap's reading end attached.

    ``format`` is the output's `doradus.codecs.FormatSpec` (``to_json``), None for Arrow.

    Example:
        >>> Tapped(op="tapped", topic="cam/image", format=None, peer="doradus-topic-1")["peer"]
        'doradus-topic-1'
    """

    op: Literal["tapped"]
    topic: str
    format: dict[str, Any] | None
    peer: str
    """The name the node knows the tap by."""


class PubRequest(TypedDict):
    """``pub``: send ``value`` (JSON) to the receivers of one output, as if its node had sent it.

    ``arrow_type`` (an Arrow type's name, e.g. ``int32``) converts the value to that type;
    ``metadata`` are the message's metadata key-values.

    Example:
        >>> PubRequest(op="pub", node="cam", output="image", value=[1, 2], metadata={})["value"]
        [1, 2]
    """

    op: Literal["pub"]
    node: str
    output: str
    value: Any
    metadata: dict[str, Any]
    arrow_type: NotRequired[str | None]


class Missed(TypedDict):
    """An input a published message did not reach, and why.

    Example:
        >>> Missed(input="viewer/frames", why="it runs on machine 'm2'")["input"]
        'viewer/frames'
    """

    input: str
    why: str


class Published(TypedDict):
    """The answer to ``pub``: the ``NODE/INPUT`` it reached, those it did not.

    Example:
        >>> Published(op="published", topic="cam/image", reached=["det/frames"], missed=[])["reached"]
        ['det/frames']
    """

    op: Literal["published"]
    topic: str
    reached: list[str]
    missed: list[Missed]


class DataflowFile(TypedDict):
    """The answer to ``dataflow``: the run's dataflow file, its text None when too long to send.

    Example:
        >>> DataflowFile(op="dataflow", path="/p/df.yml", name="df", run_id="r1", text="nodes: []")["path"]
        '/p/df.yml'
    """

    op: Literal["dataflow"]
    path: str
    name: str
    run_id: str
    text: str | None
    """The YAML text the run was started with; None past `MAX_DATAFLOW_TEXT` bytes."""


MAX_DATAFLOW_TEXT = 128 * 1024
"""Most bytes of dataflow text a ``dataflow`` answer carries (one datagram of the topic socket)."""


class Refusal(TypedDict):
    """The answer to a request that cannot be served.

    Example:
        >>> Refusal(op="error", message="no node 'x'", fix=None)["op"]
        'error'
    """

    op: Literal["error"]
    message: str
    fix: str | None
