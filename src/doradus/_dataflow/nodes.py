"""Reading one entry of ``nodes:`` into a `NodeSpec`.

A node runs exactly one program, given by one of ``path`` (with ``args``,
``build``, ``inputs``, ``outputs``), dora 0.x ``custom:`` (the same keys
nested, ``source`` for ``path`` and ``envs`` for ``env``), ``operator:`` or
``operators:``. Checks that involve other nodes (sources, unique ids) are
the descriptor's; this module reads one node on its own.

Example:
    >>> from pathlib import Path
    >>> from doradus._dataflow.yaml_positions import Positions
    >>> reader = FieldReader(Positions(Path("/df/d.yml"), {}, {}))
    >>> draft = read_node(reader, NodeContext(Path("/df")), ("nodes", 0),
    ...                   {"id": "cam", "path": "dynamic", "outputs": ["image"]})
    >>> draft.spec.kind, draft.spec.outputs
    ('dynamic', ('image',))
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doradus._dataflow.fields import FieldReader
from doradus._dataflow.formats import read_format_name
from doradus._dataflow.model import InputSpec, NodeKind, NodeSpec, OperatorSpec, RestartPolicy
from doradus._dataflow.node_fields import (
    read_args,
    read_build,
    read_env,
    read_inputs,
    read_outputs,
    read_send_stdout_as,
)
from doradus._dataflow.node_paths import resolve_node_path
from doradus._dataflow.operators import Operators, read_operator, read_operators
from doradus._dataflow.problems import shorten
from doradus._dataflow.yaml_positions import KeyPath

PROGRAM_KEYS = ("path", "custom", "operator", "operators")
"""A node has exactly one of these."""

NODE_KEYS = frozenset(
    {
        *PROGRAM_KEYS,
        *("id", "name", "description", "git", "branch", "tag", "rev", "build", "args", "env"),
        *("inputs", "outputs", "send_stdout_as", "restart_policy", "max_restarts", "restart_delay"),
        *("max_restart_delay", "restart_window", "health_check_timeout", "finish_grace_secs"),
        *("startup_timeout", "shared_memory_pool_size", "cpu_affinity", "deploy", "_unstable_deploy"),
        *("data_format", "schema", "output_formats", "communication"),
    }
)
CUSTOM_KEYS = frozenset({"source", "args", "envs", "inputs", "outputs", "build", "send_stdout_as"})
DEPLOY_KEYS = frozenset({"machine", "working_dir", "labels"})
RESTART_POLICIES: tuple[RestartPolicy, ...] = ("never", "on-failure", "always")
DURATION_KEYS = (
    "restart_delay",
    "max_restart_delay",
    "restart_window",
    "health_check_timeout",
    "finish_grace_secs",
    "startup_timeout",
)
POSITIVE_DURATIONS = frozenset({"health_check_timeout", "startup_timeout", "restart_window"})
"""0 would end every node at once (or count no restart): refused."""
NODE_ID = re.compile(r"[a-zA-Z0-9_.-]+")

_NOT_WITH_OPERATORS = ("args", "inputs", "outputs", "send_stdout_as")
_GIT_FIX = "clone the repository and set `path` to the node's file"


@dataclass(frozen=True)
class NodeContext:
    """What reading a node needs from the dataflow around it.

    Example:
        >>> NodeContext(Path("/df")).env
        {}
    """

    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    machine: str | None = None
    data_format: str | None = None


@dataclass(frozen=True)
class NodeDraft:
    """A node read on its own, with what the cross-node checks need.

    Example:
        >>> NodeDraft(NodeSpec("a", "dynamic"), ("nodes", 0, "id"), {}, True).spec.id
        'a'
    """

    spec: NodeSpec
    id_path: KeyPath
    source_paths: dict[str, KeyPath]
    """Node-level input id to the key path of its source text."""
    outputs_known: bool
    """False when the outputs could not all be read (skip checks against them)."""


@dataclass
class _Program:
    kind: NodeKind = "dynamic"
    path: str | None = None
    executable: str | None = None
    args: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    source_paths: dict[str, KeyPath] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    outputs_known: bool = False
    send_stdout_as: str | None = None
    operators: tuple[OperatorSpec, ...] = ()


def read_node(reader: FieldReader, context: NodeContext, path: KeyPath, value: object) -> NodeDraft | None:
    """Read one node; returns None when it has no usable id.

    Every problem found is recorded on ``reader``; a draft is returned even
    for a node with errors so that other nodes can still be checked against
    its id and outputs.

    Example:
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("/df/d.yml"), {}, {}))
        >>> read_node(reader, NodeContext(Path("/df")), ("nodes", 0), {"path": "dynamic"}) is None
        True
        >>> reader.problems[0].message
        'node has no `id`'
    """
    if not isinstance(value, dict):
        fix = "write each node as a mapping: `- id: my_node` with `path: my_node.py` indented under it"
        reader.type_error(path, value, "a mapping with `id` and `path`", fix)
        return None
    reader.keys(path, value, NODE_KEYS, what="node")
    node_id = _read_id(reader, path, value)
    program = _read_program(reader, context, path, value)
    env = {
        **context.env,
        **read_env(reader, (*path, "env"), value.get("env"), context.variables),
        **program.env,
    }
    _read_git(reader, path, value)
    name = reader.text((*path, "name"), value.get("name"))
    description = reader.text((*path, "description"), value.get("description"))
    runtime = _read_runtime(reader, context, path, value)
    if node_id is None:
        return None
    spec = NodeSpec(
        id=node_id,
        kind=program.kind,
        path=program.path,
        executable=program.executable,
        args=program.args,
        env=env,
        build=program.build,
        inputs=program.inputs,
        outputs=program.outputs,
        operators=program.operators,
        name=name,
        description=description,
        location=reader.positions.value_at(path),
        raw=value,
        send_stdout_as=program.send_stdout_as,
        **runtime,
    )
    return NodeDraft(spec, (*path, "id"), program.source_paths, program.outputs_known)


def _read_id(reader: FieldReader, path: KeyPath, node: dict[Any, Any]) -> str | None:
    if node.get("id") is None:
        where = (*path, "id") if "id" in node else path
        reader.error(where, "node has no `id`", "add `id: my_node` (letters, digits, `_`, `.`, `-`)")
        return None
    node_id = reader.text((*path, "id"), node["id"])
    if node_id is None:
        return None
    if node_id == "dora":
        reader.error((*path, "id"), "`dora` is reserved and cannot be a node id", "rename the node")
        return None
    if not NODE_ID.fullmatch(node_id):
        message = f"node id `{shorten(node_id)}` may only hold letters, digits, `_`, `.` and `-` (no `/`)"
        reader.error((*path, "id"), message, "rename it, e.g. `id: my_node`")
        return None
    return node_id


def _read_program(reader: FieldReader, context: NodeContext, path: KeyPath, node: dict[Any, Any]) -> _Program:
    given = [key for key in PROGRAM_KEYS if key in node]
    if not given:
        fix = "add `path: my_node.py` (a Python file), an executable, `path: dynamic`, or an `operator:`"
        reader.error(path, "node has no `path`, `custom`, `operator` or `operators`", fix)
    for extra in given[1:]:
        message = f"node has both `{given[0]}` and `{extra}`"
        reader.error(
            (*path, extra),
            message,
            "keep exactly one of `path`, `custom`, `operator`, `operators`",
            at_key=True,
        )
    kind = given[0] if given else "path"
    has_git = node.get("git") is not None
    if kind == "custom":
        return _read_custom(reader, context, path, node, has_git=has_git)
    if kind in ("operator", "operators"):
        return _read_operator_node(reader, context, path, node, kind)
    return _read_path_program(reader, context, path, node, "path", check_files=bool(given) and not has_git)


def _read_path_program(
    reader: FieldReader,
    context: NodeContext,
    base: KeyPath,
    mapping: dict[Any, Any],
    path_key: str,
    *,
    check_files: bool,
) -> _Program:
    """Read a program given by a path: on the node, or under ``custom:`` (``path_key`` ``source``)."""
    program = _Program()
    program.build = read_build(reader, (*base, "build"), mapping.get("build"))
    program.args = read_args(reader, (*base, "args"), mapping.get("args"))
    ports = read_inputs(reader, (*base, "inputs"), mapping.get("inputs"))
    program.inputs, program.source_paths = ports.inputs, ports.source_paths
    program.outputs, program.outputs_known = read_outputs(reader, (*base, "outputs"), mapping.get("outputs"))
    stdout_path = (*base, "send_stdout_as")
    known = program.outputs if program.outputs_known else None
    program.send_stdout_as = read_send_stdout_as(reader, stdout_path, mapping.get("send_stdout_as"), known)
    text = reader.text((*base, path_key), mapping.get(path_key))
    if text is not None:
        _resolve(reader, context, (*base, path_key), text, program, check_files=check_files)
    elif path_key in mapping and mapping[path_key] is None:
        reader.error(
            (*base, path_key), f"`{path_key}` is empty", "name a Python file, an executable or `dynamic`"
        )
    return program


def _resolve(
    reader: FieldReader,
    context: NodeContext,
    path: KeyPath,
    text: str,
    program: _Program,
    *,
    check_files: bool,
) -> None:
    resolved = resolve_node_path(text, context.folder)
    program.path, program.kind, program.executable = (text, resolved.kind, resolved.executable)
    if resolved.problem is None or (resolved.missing and not check_files):
        return
    message, fix = resolved.problem
    if resolved.missing and program.build:
        reader.warn(path, f"{message}; it will be checked after the build", None)
    else:
        reader.error(path, message, fix)


def _read_custom(
    reader: FieldReader, context: NodeContext, path: KeyPath, node: dict[Any, Any], *, has_git: bool
) -> _Program:
    custom_path = (*path, "custom")
    fix = "move its keys onto the node (`source` becomes `path`, `envs` becomes `env`) and remove `custom:`"
    reader.warn(custom_path, "`custom:` is dora 0.x syntax", fix, at_key=True)
    custom = reader.mapping(custom_path, node["custom"])
    if custom is None:
        return _Program()
    reader.keys(custom_path, custom, CUSTOM_KEYS, what="custom")
    for key in ("args", "build", "inputs", "outputs", "send_stdout_as"):
        if key in node and key in custom:
            message = f"`{key}` is given both on the node and under `custom`"
            reader.error((*path, key), message, f"keep only one `{key}`", at_key=True)
    if "source" not in custom:
        fix = "add `source: my_node.py` under `custom:`"
        reader.error(custom_path, "`custom` has no `source`", fix, at_key=True)
    program = _read_path_program(reader, context, custom_path, custom, "source", check_files=not has_git)
    program.env = read_env(reader, (*custom_path, "envs"), custom.get("envs"), context.variables)
    return program


def _read_operator_node(
    reader: FieldReader, context: NodeContext, path: KeyPath, node: dict[Any, Any], kind: str
) -> _Program:
    for key in _NOT_WITH_OPERATORS:
        if key in node:
            message = f"`{key}` does not apply to an operator node"
            reader.error((*path, key), message, f"move `{key}` under the operator", at_key=True)
    build = read_build(reader, (*path, "build"), node.get("build"))
    read = read_operator if kind == "operator" else read_operators
    ops: Operators = read(reader, context.folder, (*path, kind), node[kind], has_build=bool(build))
    return _Program(
        kind="operator",
        build=(*build, *ops.build),
        inputs=ops.inputs,
        source_paths=ops.source_paths,
        outputs=ops.outputs,
        outputs_known=ops.outputs_known,
        send_stdout_as=ops.send_stdout_as,
        operators=ops.operators,
    )


def _read_git(reader: FieldReader, path: KeyPath, node: dict[Any, Any]) -> None:
    refs = [key for key in ("branch", "tag", "rev") if key in node]
    for key in ("git", *refs):
        if key in node:
            reader.text((*path, key), node[key])
    for extra in refs[1:]:
        message = f"give only one of `branch`, `tag` and `rev` (found `{refs[0]}` too)"
        reader.error((*path, extra), message, f"remove `{extra}` or `{refs[0]}`", at_key=True)
    if isinstance(node.get("git"), str):
        reader.error((*path, "git"), "git sources are not supported yet", _GIT_FIX, at_key=True)
    elif refs and "git" not in node:
        reader.error(
            (*path, refs[0]),
            f"`{refs[0]}` needs a `git` repository",
            "add `git: <url>` or remove it",
            at_key=True,
        )


def _read_runtime(
    reader: FieldReader, context: NodeContext, path: KeyPath, node: dict[Any, Any]
) -> dict[str, Any]:
    """Read restart, timing, resource, placement and format settings."""
    settings: dict[str, Any] = {
        key: reader.duration((*path, key), node.get(key), positive=key in POSITIVE_DURATIONS)
        for key in DURATION_KEYS
    }
    policy = reader.choice((*path, "restart_policy"), node.get("restart_policy"), RESTART_POLICIES)
    settings["restart_policy"] = policy or "never"
    settings["max_restarts"] = reader.integer((*path, "max_restarts"), node.get("max_restarts")) or 0
    settings["shared_memory_pool_size"] = reader.byte_size(
        (*path, "shared_memory_pool_size"), node.get("shared_memory_pool_size")
    )
    settings["cpu_affinity"] = _read_cpu_affinity(reader, (*path, "cpu_affinity"), node.get("cpu_affinity"))
    data_format = read_format_name(reader, (*path, "data_format"), node.get("data_format"))
    settings["data_format"] = data_format or context.data_format
    settings["communication"] = _read_communication(
        reader, (*path, "communication"), node.get("communication")
    )
    settings["machine"] = _read_node_machine(reader, path, node) or context.machine
    return settings


def _read_cpu_affinity(reader: FieldReader, path: KeyPath, value: object) -> tuple[int, ...]:
    cpus: list[int] = []
    for index, item in enumerate(reader.sequence(path, value) or []):
        cpu = reader.integer((*path, index), item)
        if cpu is not None:
            cpus.append(cpu)
        elif item is None:
            reader.type_error((*path, index), item, "a whole number ≥ 0", "list CPU numbers, e.g. `[0, 1]`")
    return tuple(cpus)


def _read_communication(reader: FieldReader, path: KeyPath, value: object) -> Any:
    if isinstance(value, str):
        from doradus._dataflow.communication import check_backend_name

        return value if check_backend_name(reader, path, value) else None
    if value is None or isinstance(value, dict):
        return value
    reader.type_error(path, value, "a backend name or a mapping", "write e.g. `communication: zenoh`")
    return None


def _read_node_machine(reader: FieldReader, path: KeyPath, node: dict[Any, Any]) -> str | None:
    machine = read_deploy(reader, (*path, "deploy"), node.get("deploy"))
    if "_unstable_deploy" in node:
        fix = "rename `_unstable_deploy` to `deploy`"
        reader.warn((*path, "_unstable_deploy"), "`_unstable_deploy` is dora 0.x syntax", fix, at_key=True)
        old = read_deploy(reader, (*path, "_unstable_deploy"), node["_unstable_deploy"])
        machine = machine or old
    return machine


def read_deploy(reader: FieldReader, path: KeyPath, value: object) -> str | None:
    """Read a ``deploy:`` mapping ``{machine, working_dir, labels}``; returns the machine.

    Example:
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("d.yml"), {}, {}))
        >>> read_deploy(reader, ("deploy",), {"machine": "robot", "labels": {"gpu": "yes"}})
        'robot'
    """
    deploy = reader.mapping(path, value)
    if deploy is None:
        return None
    reader.keys(path, deploy, DEPLOY_KEYS, what="deploy")
    reader.text((*path, "working_dir"), deploy.get("working_dir"))
    labels = reader.mapping((*path, "labels"), deploy.get("labels")) or {}
    for key, label in labels.items():
        if isinstance(label, (dict, list)):
            reader.type_error((*path, "labels", key), label, "text", "write each label as `name: value`")
    return reader.text((*path, "machine"), deploy.get("machine"))
