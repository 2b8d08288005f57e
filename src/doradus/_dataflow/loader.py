r"""Loading and validating dataflow files (dora-rs YAML plus Doradus's own keys).

`load_dataflow` returns a validated `Dataflow` or raises `DescriptorError`
carrying *every* error in the file, each with its line, column and a
suggested fix; `check_dataflow` returns the same problems (warnings too)
without raising, for ``doradus validate``. `load_dataflow_text` and
`check_dataflow_text` do the same for text received from elsewhere (the
coordinator's API, a daemon's spawn order): the path they are given names the
file in messages and is where relative node paths start; it is never read.

Guarantees: any input file gives either a `Dataflow` or a `DescriptorError`,
never another exception; a file is read only if it is a regular file of at
most `MAX_DATAFLOW_BYTES` (a pipe, a device or a huge file is a problem, not a
hang); nothing is imported beyond PyYAML and the standard library.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "df.yml").write_text(
    ...     "nodes:\n  - id: cam\n    path: dynamic\n    inputs: {tick: dora/timer/millis/20}\n")
    >>> dataflow = load_dataflow(folder / "df.yml")
    >>> dataflow.node("cam").inputs["tick"].source.interval_ns
    20000000
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from doradus._dataflow.fields import FieldReader
from doradus._dataflow.formats import apply_formats, read_format_name
from doradus._dataflow.model import Dataflow, InputSource, Location, LogSource, NodeSource
from doradus._dataflow.node_fields import read_env
from doradus._dataflow.nodes import (
    NodeContext,
    NodeDraft,
    _read_node_machine,
    read_deploy,
    read_node,
)
from doradus._dataflow.not_applied import find_not_applied
from doradus._dataflow.problems import Problem, closest, shorten, sort_problems
from doradus._dataflow.yaml_positions import KeyPath, location_of_offset, parse_yaml
from doradus._exceptions import DescriptorError
from doradus._files import FileTooLarge, NotRegularFile, read_regular_file

__all__ = [
    "MAX_DATAFLOW_BYTES",
    "check_dataflow",
    "check_dataflow_text",
    "load_dataflow",
    "load_dataflow_text",
    "node_machines",
    "read_dataflow_text",
]

MAX_DATAFLOW_BYTES = 1 << 20
"""The largest dataflow file read or accepted (1 MiB): far more than any real one needs."""

TOP_LEVEL_KEYS = frozenset(
    {
        *("nodes", "env", "deploy", "_unstable_deploy", "debug", "health_check_interval"),
        *("exit_when_nodes_finish", "strict_types", "type_rules", "communication", "default_data_format"),
    }
)
DEBUG_KEYS = frozenset({"enable_debug_inspection"})
DEFAULT_HEALTH_CHECK_INTERVAL = 5.0
COMMUNICATION_0X = {"_unstable_local": "local", "_unstable_remote": "remote"}
DORA_0X_BACKENDS = {"shmem": "shm", "unixdomain": "shm"}
"""dora 0.x local transports: both map onto Doradus's shared-memory links."""
"""dora 0.x ``communication`` keys and the Doradus keys they map onto."""

_NODES_FIX = "add `nodes:` with one `- id: ...` entry per node, e.g. `- id: camera` and `path: camera.py`"


def load_dataflow(path: str | os.PathLike[str], *, extra_env: Mapping[str, str] | None = None) -> Dataflow:
    r"""Read, validate and normalise a dataflow file.

    Args:
        path: The YAML file. Relative node paths start from its folder.
        extra_env: Variables for ``$VAR`` expansion in ``env`` values, on top
            of (and winning over) the process environment.

    Returns:
        The dataflow; its ``warnings`` hold deprecations and other warnings,
        its ``not_applied`` the settings Doradus checks but does not apply yet.

    Raises:
        DescriptorError: The file is unreadable or invalid; ``problems``
            lists every error, in file order.

    Example:
        >>> import tempfile
        >>> bad = Path(tempfile.mkdtemp()) / "df.yml"
        >>> _ = bad.write_text("nodes:\n  - id: a\n    path: dynamic\n    inputs: {x: ghost/out}\n")
        >>> try:
        ...     load_dataflow(bad)
        ... except DescriptorError as exc:
        ...     print(exc.problems[0].message)
        input `x` of node `a` reads from unknown node `ghost`
    """
    dataflow, problems = check_dataflow(path, extra_env=extra_env)
    if dataflow is None:
        raise DescriptorError([problem for problem in problems if problem.is_error])
    return dataflow


def check_dataflow(
    path: str | os.PathLike[str], *, extra_env: Mapping[str, str] | None = None
) -> tuple[Dataflow | None, list[Problem]]:
    r"""Validate a dataflow file, returning every problem instead of raising.

    Args:
        path: The YAML file.
        extra_env: Variables for ``$VAR`` expansion (see `load_dataflow`).

    Returns:
        ``(dataflow, problems)``: all errors and warnings in file order; the
        dataflow is None when any of them is an error.

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "df.yml"
        >>> _ = file.write_text("nodes:\n  - id: a\n    path: dynamic\n    colour: red\n")
        >>> dataflow, problems = check_dataflow(file)
        >>> dataflow is None, str(problems[0].location).endswith("df.yml:4:5")
        (True, True)
    """
    file = Path(path)
    text, problems = read_dataflow_text(file)
    if text is None:
        return None, problems
    return check_dataflow_text(text, file, extra_env=extra_env)


def load_dataflow_text(
    text: str, path: str | os.PathLike[str], *, extra_env: Mapping[str, str] | None = None
) -> Dataflow:
    r"""Validate and normalise a dataflow given as text, as `load_dataflow` does a file.

    Args:
        text: The YAML text.
        path: Where the file lives (never read): messages name it, relative
            node paths start from its folder, nodes run there.
        extra_env: Variables for ``$VAR`` expansion (see `load_dataflow`).

    Returns:
        The dataflow.

    Raises:
        DescriptorError: The text is invalid; ``problems`` lists every error.

    Example:
        >>> flow = load_dataflow_text("nodes:\n  - id: a\n    path: dynamic\n", "/srv/robot/flow.yml")
        >>> flow.node("a").id, str(flow.path), str(flow.working_dir)
        ('a', '/srv/robot/flow.yml', '/srv/robot')
    """
    dataflow, problems = check_dataflow_text(text, path, extra_env=extra_env)
    if dataflow is None:
        raise DescriptorError([problem for problem in problems if problem.is_error])
    return dataflow


def check_dataflow_text(
    text: str, path: str | os.PathLike[str], *, extra_env: Mapping[str, str] | None = None
) -> tuple[Dataflow | None, list[Problem]]:
    r"""Validate a dataflow given as text, returning every problem instead of raising.

    Args:
        text: The YAML text.
        path: Where the file lives (never read; see `load_dataflow_text`).
        extra_env: Variables for ``$VAR`` expansion (see `load_dataflow`).

    Returns:
        ``(dataflow, problems)``, as `check_dataflow` returns them.

    Example:
        >>> dataflow, problems = check_dataflow_text("nodes: []\n", "/srv/flow.yml")
        >>> dataflow, [str(p.location) for p in problems], problems[0].message
        (None, ['/srv/flow.yml:1:8'], '`nodes` is empty')
    """
    file = Path(path)
    document, problems = parse_yaml(text, file)
    if document is None:
        return None, problems or [Problem(Location(file, 1, 1), "the dataflow file is empty", _NODES_FIX)]
    reader = FieldReader(document.positions, settled=problems)
    variables = {**os.environ, **(extra_env or {})}
    dataflow = _read_dataflow(reader, file, document.value, variables)
    problems = sort_problems(reader.problems)
    if dataflow is None or reader.has_errors:
        return None, problems
    warnings = tuple(problem for problem in problems if not problem.is_error)
    return dataclasses.replace(dataflow, warnings=warnings, text=text), problems


def read_dataflow_text(path: str | os.PathLike[str]) -> tuple[str | None, list[Problem]]:
    r"""The text of a dataflow file, or None and the problem that kept it from being read.

    Only a regular file of at most `MAX_DATAFLOW_BYTES` is read (see
    `doradus._files`); UTF-8 (with or without a BOM) and UTF-16 with a
    BOM are decoded. The problem names the file, never its contents.

    Example:
        >>> text, problems = read_dataflow_text("/dev/zero")
        >>> text, problems[0].message
        (None, '/dev/zero is not a regular file: it is a character device')
    """
    file = Path(path)
    start = Location(file, 1, 1)
    try:
        data = read_regular_file(file, limit=MAX_DATAFLOW_BYTES)
    except FileNotFoundError:
        return None, [Problem(start, f"no dataflow file at {file}", "check the path and the current folder")]
    except IsADirectoryError:
        return None, [
            Problem(start, f"{file} is a folder, not a dataflow file", "name the YAML file inside it")
        ]
    except NotRegularFile as exc:
        return None, [Problem(start, str(exc), "name the dataflow's YAML file")]
    except FileTooLarge as exc:
        return None, [Problem(start, f"{exc}: not a dataflow file", "name the dataflow's YAML file")]
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return None, [
            Problem(start, f"cannot read the dataflow file: {reason}", "check the path and its permissions")
        ]
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return data.decode(encoding), []
    except UnicodeDecodeError as exc:
        label = "UTF-16" if encoding == "utf-16" else "UTF-8"
        prefix = data[: exc.start].decode(encoding, errors="replace")
        where = location_of_offset(prefix, len(prefix), file)
        return None, [Problem(where, f"the file is not valid {label} text", "save it as UTF-8")]


def node_machines(text: str, path: str | os.PathLike[str]) -> dict[str, str | None] | None:
    r"""Node id → the machine its ``deploy`` names (or the file's), from the text alone.

    What the coordinator needs to place nodes, without validating the rest: no
    file is read (a dataflow's schema files and programs live on the daemons'
    machines). None when the text is not a mapping with a ``nodes`` list.

    Example:
        >>> text = "deploy: {machine: a}\nnodes:\n  - id: x\n  - id: y\n    deploy: {machine: b}\n"
        >>> node_machines(text, "f.yml")
        {'x': 'a', 'y': 'b'}
    """
    file = Path(path)
    document, _problems = parse_yaml(text, file)
    top = None if document is None else document.value
    if document is None or not isinstance(top, dict) or not isinstance(top.get("nodes"), list):
        return None
    reader = FieldReader(document.positions)
    default = _read_machine(reader, top)
    return {
        node["id"]: _read_node_machine(reader, ("nodes", index), node) or default
        for index, node in enumerate(top["nodes"])
        if isinstance(node, dict) and isinstance(node.get("id"), str)
    }


def _read_dataflow(
    reader: FieldReader, file: Path, value: object, variables: Mapping[str, str]
) -> Dataflow | None:
    if not isinstance(value, dict):
        message = f"a dataflow file must be a mapping with a `nodes` key, got {_describe_root(value)}"
        reader.problems.append(Problem(Location(file, 1, 1), message, _NODES_FIX))
        return None
    reader.keys((), value, TOP_LEVEL_KEYS, what="top-level")
    _read_flags(reader, value)
    default_format = read_format_name(reader, ("default_data_format",), value.get("default_data_format"))
    folder = Path(os.path.abspath(file)).parent
    context = NodeContext(
        folder=folder,
        env=read_env(reader, ("env",), value.get("env"), variables),
        variables=variables,
        machine=_read_machine(reader, value),
        data_format=default_format,
    )
    drafts = _read_nodes(reader, context, value)
    interval = reader.duration(("health_check_interval",), value.get("health_check_interval"), positive=True)
    communication = _read_communication(reader, ("communication",), value.get("communication"))
    return Dataflow(
        path=folder / file.name,
        nodes=tuple(draft.spec for draft in drafts),
        env=context.env,
        communication=communication,
        default_data_format=default_format,
        health_check_interval=DEFAULT_HEALTH_CHECK_INTERVAL if interval is None else interval,
        raw=value,
        not_applied=tuple(find_not_applied(reader.positions, value, drafts, communication)),
    )


def _describe_root(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    return "a single value" if value is not None else "nothing"


def _read_flags(reader: FieldReader, top: dict[Any, Any]) -> None:
    """Type-check the top-level keys that only the runtime reads (from ``raw``)."""
    for key in ("exit_when_nodes_finish", "strict_types"):
        reader.boolean((key,), top.get(key))
    debug = reader.mapping(("debug",), top.get("debug"))
    if debug is not None:
        reader.keys(("debug",), debug, DEBUG_KEYS, what="debug")
        reader.boolean(("debug", "enable_debug_inspection"), debug.get("enable_debug_inspection"))
    rules = top.get("type_rules")
    if rules is not None and not isinstance(rules, (dict, list)):
        fix = "write `type_rules` as a mapping (or a list) of rules"
        reader.type_error(("type_rules",), rules, "a mapping or a list", fix)


def _read_machine(reader: FieldReader, top: dict[Any, Any]) -> str | None:
    machine = read_deploy(reader, ("deploy",), top.get("deploy"))
    if "_unstable_deploy" in top:
        fix = "rename `_unstable_deploy` to `deploy`"
        reader.warn(("_unstable_deploy",), "`_unstable_deploy` is dora 0.x syntax", fix, at_key=True)
        machine = machine or read_deploy(reader, ("_unstable_deploy",), top["_unstable_deploy"])
    return machine


def _read_communication(reader: FieldReader, path: KeyPath, value: object) -> dict[str, Any]:
    """Read ``{local, remote, ...options}``, mapping dora 0.x keys onto local and remote."""
    mapping = reader.mapping(path, value)
    if mapping is None:
        return {}
    result = dict(mapping)
    for key in ("local", "remote"):
        reader.text((*path, key), mapping.get(key))
    for old, new in COMMUNICATION_0X.items():
        if old not in mapping:
            continue
        fix = f"write `{new}: <backend>` instead"
        reader.warn((*path, old), f"`{old}` is dora 0.x syntax", fix, at_key=True)
        name = _backend_name(reader, (*path, old), mapping[old])
        if name is not None and result.get(new) is None:
            result[new] = name
    from doradus._dataflow.communication import check_communication

    check_communication(reader, path, mapping)
    return result


def _backend_name(reader: FieldReader, path: KeyPath, value: object) -> str | None:
    """A 0.x backend: a name (``Tcp``) or a one-key mapping (``{Zenoh: {...}}``), lower-cased."""
    if isinstance(value, str) and value:
        return DORA_0X_BACKENDS.get(value.lower(), value.lower())
    if isinstance(value, dict) and len(value) == 1:
        (name,) = value
        if isinstance(name, str) and name:
            return DORA_0X_BACKENDS.get(name.lower(), name.lower())
    fix = "write a backend name, e.g. `tcp`, or a mapping of one backend to its options"
    reader.type_error(path, value, "a backend name or a one-key mapping", fix)
    return None


def _read_nodes(reader: FieldReader, context: NodeContext, top: dict[Any, Any]) -> list[NodeDraft]:
    if top.get("nodes") is None:
        where = ("nodes",) if "nodes" in top else ()
        reader.error(where, "the dataflow has no `nodes`", _NODES_FIX)
        return []
    items = reader.sequence(("nodes",), top["nodes"])
    if not items:
        if items is not None:
            reader.error(("nodes",), "`nodes` is empty", _NODES_FIX)
        return []
    drafts = [read_node(reader, context, ("nodes", index), item) for index, item in enumerate(items)]
    unique = _unique(reader, [draft for draft in drafts if draft is not None])
    written = {node_id for item in items if isinstance(node_id := _written_id(item), str)}
    _check_sources(reader, unique, written)
    return apply_formats(reader, unique)


def _written_id(item: object) -> object:
    return item.get("id") if isinstance(item, dict) else None


def _unique(reader: FieldReader, drafts: list[NodeDraft]) -> list[NodeDraft]:
    seen: dict[str, NodeDraft] = {}
    for draft in drafts:
        first = seen.get(draft.spec.id)
        if first is None:
            seen[draft.spec.id] = draft
            continue
        where = reader.positions.value_at(first.id_path)
        message = f"duplicate node id `{draft.spec.id}` (first at line {where.line}, column {where.column})"
        reader.error(draft.id_path, message, "give each node its own `id`")
    return list(seen.values())


def _check_sources(reader: FieldReader, drafts: list[NodeDraft], written: set[str]) -> None:
    """Check that every source names an existing node and one of its outputs.

    ``written`` holds every id written in the file, valid or not: a source
    naming a node whose id was already reported is not reported again.
    """
    by_id = {draft.spec.id: draft for draft in drafts}
    for draft in drafts:
        for input_id, spec in draft.spec.inputs.items():
            where = _Input(draft.spec.id, input_id, draft.source_paths[input_id])
            _check_source(reader, where, spec.source, by_id, written)


@dataclasses.dataclass(frozen=True)
class _Input:
    """Which input a source belongs to, for messages and locations."""

    node: str
    id: str
    path: KeyPath

    def __str__(self) -> str:
        return f"input `{self.id}` of node `{self.node}`"


def _check_source(
    reader: FieldReader, where: _Input, source: InputSource, by_id: dict[str, NodeDraft], written: set[str]
) -> None:
    if isinstance(source, LogSource):
        if source.node is not None and source.node not in by_id and source.node not in written:
            _unknown_node(reader, where, source.node, by_id, reads="reads the logs of")
        return
    if not isinstance(source, NodeSource):
        return
    target = by_id.get(source.node)
    if target is None:
        if source.node not in written:
            _unknown_node(reader, where, source.node, by_id, reads="reads from")
        return
    if target.outputs_known and source.output not in target.spec.outputs:
        _unknown_output(reader, where, source, target.spec.outputs)


def _unknown_node(
    reader: FieldReader, where: _Input, node: str, by_id: dict[str, NodeDraft], *, reads: str
) -> None:
    guess = closest(node, by_id)
    hint = (
        f"did you mean `{guess}`?"
        if guess
        else f"add a node with `id: {shorten(node)}`, or use an existing one."
    )
    message = f"{where} {reads} unknown node `{shorten(node)}`"
    reader.error(where.path, message, f"{hint} Node ids: {', '.join(by_id)}")


def _unknown_output(reader: FieldReader, where: _Input, source: NodeSource, outputs: tuple[str, ...]) -> None:
    listed = ", ".join(f"`{output}`" for output in outputs) or "none"
    message = (
        f"{where} reads from `{shorten(str(source))}`, but node `{source.node}` has no output "
        f"`{shorten(source.output)}` (its outputs: {listed})"
    )
    # `node/out` for an `operators:` node whose operator has `out` means `node/<op>/out`
    same_name = [output for output in outputs if output.rpartition("/")[2] == source.output]
    guess = same_name[0] if same_name else closest(source.output, outputs)
    fix = (
        f"did you mean `{source.node}/{guess}`?"
        if guess
        else f"add `{source.output}` to the `outputs` of node `{source.node}`"
    )
    reader.error(where.path, message, fix)
