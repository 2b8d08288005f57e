"""Starter projects: the dataflow and node files ``doradus init`` and ``doradus new`` write.

A starter dataflow is a chain: a timer drives the first node, which sends a
counter on each tick and stops after ten; every middle node forwards what it
receives; the last node prints it. The logging level goes into the dataflow's
``env`` as ``DORADUS_LOG_LEVEL``.

Example:
    >>> project = Project("demo", ("sender", "receiver"), "INFO", Path("/tmp/demo"))
    >>> [f.path.name for f in project.files()]
    ['dataflow.yaml', 'sender.py', 'receiver.py']
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml

from doradus._dataflow.json_schema import SCHEMA_FILE
from doradus._dataflow.nodes import NODE_ID
from doradus._observability.records import LEVELS, normalize_level

DATAFLOW_FILE = "dataflow.yaml"
DEFAULT_NODES = ("sender", "receiver")
LOG_LEVELS = tuple(reversed([level for level in LEVELS if level != "FATAL"]))
"""The levels `init` offers, most severe first (a dataflow's nodes never log below FATAL)."""
DEFAULT_LOG_LEVEL = "INFO"
LOG_LEVEL_VAR = "DORADUS_LOG_LEVEL"
RUNTIMES = ("local",)
TIMER = "dora/timer/millis/100"
OUTPUT = "data"
TICKS = 10

Role = Literal["only", "first", "middle", "last"]

_FIRST = '''\
"""Node `{node_id}`: sends a counter on every timer tick and stops after {ticks}."""

import pyarrow as pa

from doradus import Input, Node

node = Node()
count = 0
for event in node:
    if isinstance(event, Input) and event.id == "tick":
        count += 1
        node.send_output("{output}", pa.array([count]), {{"count": count}})
        if count == {ticks}:
            break
print(f"sent {{count}} values", flush=True)
'''

_MIDDLE = '''\
"""Node `{node_id}`: forwards every value it receives."""

from doradus import Input, Node

node = Node()
forwarded = 0
for event in node:
    if isinstance(event, Input) and event.id == "{output}":
        node.send_output("{output}", event.value, event.metadata)
        forwarded += 1
print(f"forwarded {{forwarded}} values", flush=True)
'''

_LAST = '''\
"""Node `{node_id}`: prints every value it receives until its sender is done."""

from doradus import Input, Node

node = Node()
received = 0
for event in node:
    if isinstance(event, Input) and event.id == "{output}":
        received += 1
        print(f"received {{event.value[0].as_py()}}", flush=True)
print(f"received {{received}} values", flush=True)
'''

_ONLY = '''\
"""Node `{node_id}`: counts timer ticks and stops after {ticks}."""

from doradus import Input, Node

node = Node()
count = 0
for event in node:
    if isinstance(event, Input) and event.id == "tick":
        count += 1
        print(f"tick {{count}}", flush=True)
        if count == {ticks}:
            break
'''

_STANDALONE = '''\
"""Node `{node_id}`: receives inputs and sends outputs.

Add it to your dataflow file, wiring its inputs and outputs:

    - id: {node_id}
      path: {file_name}
      inputs:
        {output}: other_node/{output}
      outputs:
        - {output}
"""

from doradus import Error, Input, InputClosed, Node, Stop

node = Node()
for event in node:
    match event:
        case Input(id=input_id, value=value, metadata=metadata):
            # Transform `value` (a pyarrow array) here, then pass it on.
            node.send_output("{output}", value, metadata)
        case InputClosed(id=input_id):
            print(f"input {{input_id!r}} closed", flush=True)
        case Error(message=message):
            print(f"error: {{message}}", flush=True)
        case Stop():
            break
'''

_TEMPLATES: dict[Role, str] = {"only": _ONLY, "first": _FIRST, "middle": _MIDDLE, "last": _LAST}


def node_id_problem(node_id: str, taken: Iterable[str] = ()) -> str | None:
    """Why ``node_id`` cannot be a node id (the dataflow rules), or None when it can.

    Args:
        node_id: The candidate id.
        taken: Ids already in the dataflow (ids must be unique).

    Returns:
        A sentence saying what is wrong, or None.

    Example:
        >>> node_id_problem("camera") is None
        True
        >>> node_id_problem("dora")
        '`dora` is reserved and cannot be a node id'
    """
    if node_id == "dora":
        return "`dora` is reserved and cannot be a node id"
    if not NODE_ID.fullmatch(node_id):
        return f"`{node_id}` is not a node id: use letters, digits, `_`, `.` and `-` only"
    if node_id in set(taken):
        return f"there is already a node `{node_id}`: node ids must be unique"
    return None


def dataflow_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a dataflow (same characters as node ids), or None when it can.

    Example:
        >>> dataflow_name_problem("my-robot") is None, dataflow_name_problem("my robot") is not None
        (True, True)
    """
    if NODE_ID.fullmatch(name):
        return None
    return f"`{name}` is not a dataflow name: use letters, digits, `_`, `.` and `-` only"


def default_name(folder: Path) -> str:
    """A dataflow name from a folder's name, with characters outside ``[a-zA-Z0-9_.-]`` as ``-``.

    Example:
        >>> default_name(Path("/home/me/my robot"))
        'my-robot'
    """
    raw = Path(os.path.abspath(folder)).name
    cleaned = "".join(c if NODE_ID.fullmatch(c) else "-" for c in raw).strip("-")
    return cleaned or "dataflow"


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar that reads back as the same string (quoted only when needed)."""
    return text if yaml.safe_load(text) == text else json.dumps(text)


def role_of(index: int, count: int) -> Role:
    """The role of the node at ``index`` in a chain of ``count`` nodes.

    Example:
        >>> [role_of(i, 3) for i in range(3)]
        ['first', 'middle', 'last']
    """
    if count == 1:
        return "only"
    if index == 0:
        return "first"
    return "last" if index == count - 1 else "middle"


def schema_modeline() -> str:
    """The first line of a written dataflow: editors read the JSON Schema of dataflow files from it.

    It names the copy installed with Doradus (``doradus/_assets/dataflow.schema.json``) by its
    absolute path: editors then complete and check keys offline, with the keys of the Doradus
    version that runs the file. (The docs site publishes the same file at
    ``schema/dataflow.schema.json``.)

    Example:
        >>> line = schema_modeline()
        >>> line.startswith("# yaml-language-server: $schema=/"), line.endswith("/dataflow.schema.json")
        (True, True)
    """
    return f"# yaml-language-server: $schema={schema_path()}"


def schema_path() -> Path:
    """Where the JSON Schema of dataflow files is installed (``doradus schema --path`` prints it).

    Example:
        >>> schema_path().name, schema_path().is_file()
        ('dataflow.schema.json', True)
    """
    return Path(str(resources.files("doradus._assets").joinpath(SCHEMA_FILE))).resolve()


def render_dataflow(name: str, nodes: Iterable[str], log_level: str) -> str:
    """The YAML text of a chain dataflow over ``nodes``.

    Example:
        >>> "DORADUS_LOG_LEVEL: INFO" in render_dataflow("demo", ["a", "b"], "INFO")
        True
    """
    ids = list(nodes)
    lines = [
        schema_modeline(),
        f"# Dataflow `{name}`, written by `doradus init`.",
        f"#   doradus run {DATAFLOW_FILE}",
        "env:",
        f"  {LOG_LEVEL_VAR}: {_scalar(log_level)}",
        "nodes:",
    ]
    for index, node_id in enumerate(ids):
        role = role_of(index, len(ids))
        lines += [f"  - id: {_scalar(node_id)}", f"    path: {_scalar(node_id + '.py')}", "    inputs:"]
        if role in ("only", "first"):
            lines.append(f"      tick: {TIMER}")
        else:
            lines.append(f"      {OUTPUT}: {_scalar(ids[index - 1] + '/' + OUTPUT)}")
        if role in ("first", "middle"):
            lines += ["    outputs:", f"      - {OUTPUT}"]
        lines.append("")
    return "\n".join(lines)


def render_node(node_id: str, role: Role) -> str:
    """The Python source of a node playing ``role`` in a starter chain.

    Example:
        >>> "break" in render_node("sender", "first")
        True
    """
    return _TEMPLATES[role].format(node_id=node_id, output=OUTPUT, ticks=TICKS)


def render_standalone_node(node_id: str, file_name: str | None = None) -> str:
    """The Python source of a new node that forwards its inputs (``doradus new node``).

    Example:
        >>> "Node()" in render_standalone_node("filter")
        True
    """
    return _STANDALONE.format(node_id=node_id, output=OUTPUT, file_name=file_name or f"{node_id}.py")


@dataclass(frozen=True)
class ProjectFile:
    """One file of a starter project."""

    path: Path
    text: str
    replace: bool
    """Whether an existing file at ``path`` is replaced only with ``force`` (else it is kept)."""


@dataclass(frozen=True)
class Project:
    """What ``doradus init`` asked for: a chain dataflow in ``folder``.

    Example:
        >>> Project("demo", ("a",), "INFO", Path(".")).dataflow_path.name
        'dataflow.yaml'
    """

    name: str
    nodes: tuple[str, ...]
    log_level: str
    folder: Path

    @property
    def dataflow_path(self) -> Path:
        """Where the dataflow file goes."""
        return self.folder / DATAFLOW_FILE

    def files(self) -> list[ProjectFile]:
        """The dataflow file, then one Python file per node."""
        files = [
            ProjectFile(self.dataflow_path, render_dataflow(self.name, self.nodes, self.log_level), True)
        ]
        for index, node_id in enumerate(self.nodes):
            text = render_node(node_id, role_of(index, len(self.nodes)))
            files.append(ProjectFile(self.folder / f"{node_id}.py", text, False))
        return files


@dataclass(frozen=True)
class Written:
    """What `write_project` did: files written and existing node files kept."""

    written: tuple[Path, ...]
    kept: tuple[Path, ...]


def write_project(project: Project, *, force: bool = False) -> Written:
    """Write the project's files, creating its folder.

    Existing node files are kept (they may hold the user's code) unless
    ``force``; an existing dataflow file is an error unless ``force``.

    Args:
        project: What to write.
        force: Overwrite existing files.

    Returns:
        The files written and the files kept.

    Raises:
        FileExistsError: The dataflow file exists and ``force`` is false.

    Example::

        write_project(Project("demo", DEFAULT_NODES, "INFO", Path("demo")))
    """
    if project.dataflow_path.exists() and not force:
        raise FileExistsError(str(project.dataflow_path))
    project.folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    kept: list[Path] = []
    for file in project.files():
        if file.path.exists() and not force and not file.replace:
            kept.append(file.path)
            continue
        file.path.write_text(file.text)
        written.append(file.path)
    return Written(tuple(written), tuple(kept))


def normalize_log_level(text: str) -> str | None:
    """The canonical (upper-case) level for ``text``, or None if it is not one.

    Example:
        >>> normalize_log_level("debug"), normalize_log_level("warning"), normalize_log_level("loud")
        ('DEBUG', 'WARN', None)
    """
    level = normalize_level(text)
    return level if level in LOG_LEVELS else None
