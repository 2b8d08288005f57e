"""Reading ``operator:`` and ``operators:`` into `OperatorSpec` records.

With a single ``operator:`` the node's inputs and outputs are the operator's
own; with an ``operators:`` list each is prefixed with the operator id
(``detector/image``), and other nodes address them as ``node/detector/boxes``.
Only Python operators are supported.

Example:
    >>> from pathlib import Path
    >>> from doradus._dataflow.fields import FieldReader
    >>> from doradus._dataflow.yaml_positions import Positions
    >>> reader = FieldReader(Positions(Path("/df/d.yml"), {}, {}))
    >>> ops = read_operators(reader, Path("/df"), ("operators",),
    ...                      [{"id": "op", "python": "op.py", "outputs": ["out"]}], has_build=True)
    >>> ops.outputs, ops.operators[0].python
    (('op/out',), PosixPath('/df/op.py'))
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from doradus._dataflow.fields import FieldReader
from doradus._dataflow.model import InputSpec, OperatorSpec
from doradus._dataflow.node_fields import read_build, read_inputs, read_outputs, read_send_stdout_as
from doradus._dataflow.node_paths import absolute, check_file
from doradus._dataflow.problems import shorten
from doradus._dataflow.yaml_positions import KeyPath

OPERATOR_KEYS = frozenset(
    {
        "python",
        "shared-library",
        "wasm",
        "inputs",
        "outputs",
        "name",
        "description",
        "build",
        "send_stdout_as",
    }
)
PYTHON_KEYS = frozenset({"source", "conda_env"})
_ID = re.compile(r"[a-zA-Z0-9_.-]+")
_ONLY_PYTHON = (
    "only Python operators are supported",
    "rewrite the operator in Python (`python: my_operator.py`), or run the library as a node with `path:`",
)


@dataclass
class Operators:
    """What the operators of one node add up to, in the node-level view.

    Example:
        >>> Operators().outputs_known
        True
    """

    operators: tuple[OperatorSpec, ...] = ()
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    source_paths: dict[str, KeyPath] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    outputs_known: bool = True
    build: tuple[str, ...] = ()
    send_stdout_as: str | None = None


@dataclass(frozen=True)
class _Draft:
    spec: OperatorSpec
    source_paths: dict[str, KeyPath]
    outputs_known: bool
    build: tuple[str, ...]


def read_operator(
    reader: FieldReader, folder: Path, path: KeyPath, value: object, *, has_build: bool
) -> Operators:
    """Read a single ``operator:`` mapping (no id; ids are not prefixed).

    Example:
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("/df/d.yml"), {}, {}))
        >>> read_operator(reader, Path("/df"), ("operator",),
        ...               {"python": "op.py", "outputs": ["a"]}, has_build=True).outputs
        ('a',)
    """
    draft = _read_one(reader, folder, path, value, with_id=False, has_build=has_build)
    if draft is None:
        return Operators(outputs_known=False)
    spec = draft.spec
    return Operators(
        operators=(spec,),
        inputs=dict(spec.inputs),
        source_paths=draft.source_paths,
        outputs=spec.outputs,
        outputs_known=draft.outputs_known,
        build=draft.build,
        send_stdout_as=spec.send_stdout_as,
    )


def read_operators(
    reader: FieldReader, folder: Path, path: KeyPath, value: object, *, has_build: bool
) -> Operators:
    """Read an ``operators:`` list; node-level ids become ``<operator-id>/<id>``.

    Example:
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("/df/d.yml"), {}, {}))
        >>> ops = read_operators(reader, Path("/df"), ("operators",),
        ...                      [{"id": "a", "python": "a.py", "inputs": {"i": "x/y"}}], has_build=True)
        >>> list(ops.inputs)
        ['a/i']
    """
    items = reader.sequence(path, value)
    if not items:
        if items is not None:
            reader.error(
                path, "`operators` is empty", "list at least one operator: `- id: op` with `python: op.py`"
            )
        return Operators(outputs_known=False)
    result = Operators()
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        draft = _read_one(reader, folder, (*path, index), item, with_id=True, has_build=has_build)
        if draft is None or draft.spec.id is None:
            result.outputs_known = False
            continue
        if _duplicate(reader, (*path, index, "id"), draft.spec.id, seen, path):
            continue
        seen[draft.spec.id] = index
        _add(reader, result, draft, (*path, index, "send_stdout_as"))
    return result


def _duplicate(
    reader: FieldReader, id_path: KeyPath, op_id: str, seen: dict[str, int], path: KeyPath
) -> bool:
    if op_id not in seen:
        return False
    first = reader.positions.value_at((*path, seen[op_id], "id"))
    reader.error(
        id_path,
        f"duplicate operator id `{op_id}` (first at line {first.line}, column {first.column})",
        "give each operator its own id",
    )
    return True


def _add(reader: FieldReader, result: Operators, draft: _Draft, stdout_path: KeyPath) -> None:
    spec = draft.spec
    prefix = f"{spec.id}/"
    result.operators = (*result.operators, spec)
    for input_id, input_spec in spec.inputs.items():
        result.inputs[prefix + input_id] = dataclasses.replace(input_spec, id=prefix + input_id)
        result.source_paths[prefix + input_id] = draft.source_paths[input_id]
    result.outputs = (*result.outputs, *(prefix + output for output in spec.outputs))
    result.outputs_known = result.outputs_known and draft.outputs_known
    result.build = (*result.build, *draft.build)
    if spec.send_stdout_as is None:
        return
    if result.send_stdout_as is not None:
        message = f"only one operator of a node may set `send_stdout_as` (already `{result.send_stdout_as}`)"
        reader.error(stdout_path, message, "remove `send_stdout_as` from all operators but one")
        return
    result.send_stdout_as = prefix + spec.send_stdout_as


def _read_one(
    reader: FieldReader, folder: Path, path: KeyPath, value: object, *, with_id: bool, has_build: bool
) -> _Draft | None:
    if not isinstance(value, dict):
        reader.type_error(
            path, value, "a mapping", "write the operator as a mapping with `python: my_operator.py`"
        )
        return None
    reader.keys(path, value, OPERATOR_KEYS | {"id"} if with_id else OPERATOR_KEYS, what="operator")
    op_id = _read_id(reader, path, value) if with_id else None
    build = read_build(reader, (*path, "build"), value.get("build"))
    python = _read_python(reader, folder, path, value, has_build=has_build or bool(build))
    ports = read_inputs(reader, (*path, "inputs"), value.get("inputs"))
    outputs, outputs_known = read_outputs(reader, (*path, "outputs"), value.get("outputs"))
    stdout = read_send_stdout_as(reader, (*path, "send_stdout_as"), value.get("send_stdout_as"), outputs)
    name = reader.text((*path, "name"), value.get("name"))
    description = reader.text((*path, "description"), value.get("description"))
    if python is None or (with_id and op_id is None):
        return None
    spec = OperatorSpec(op_id, python, ports.inputs, outputs, name, description, stdout)
    return _Draft(spec, ports.source_paths, outputs_known, build)


def _read_id(reader: FieldReader, path: KeyPath, value: dict[object, object]) -> str | None:
    if "id" not in value:
        fix = "add `id: my_operator` (letters, digits, `_`, `.`, `-`)"
        reader.error(path, "operator has no `id`", fix, at_key=True)
        return None
    op_id = reader.text((*path, "id"), value["id"])
    if op_id is None:
        if value["id"] is None:
            reader.error((*path, "id"), "operator `id` is empty", "write `id: my_operator`")
        return None
    if not _ID.fullmatch(op_id):
        message = f"operator id `{shorten(op_id)}` may only hold letters, digits, `_`, `.` and `-`"
        reader.error((*path, "id"), message, "rename it, e.g. `id: my_operator`")
        return None
    return op_id


def _read_python(
    reader: FieldReader, folder: Path, path: KeyPath, value: dict[object, object], *, has_build: bool
) -> Path | None:
    kinds = [key for key in ("python", "shared-library", "wasm") if key in value]
    for kind in kinds:
        if kind != "python":
            reader.error((*path, kind), *_ONLY_PYTHON, at_key=True)
    if not kinds:
        reader.error(path, "operator has no `python`", "add `python: my_operator.py`", at_key=True)
    if "python" not in value:
        return None
    source_path, text = _python_source(reader, (*path, "python"), value["python"])
    if text is None:
        return None
    resolved = check_file("python", absolute(folder, text), text)
    if resolved.problem is not None and resolved.missing and has_build:
        reader.warn(source_path, f"{resolved.problem[0]}; it will be checked after the build", None)
    elif resolved.problem is not None:
        reader.error(source_path, *resolved.problem)
        return None
    return Path(resolved.executable or text)


def _python_source(reader: FieldReader, path: KeyPath, value: object) -> tuple[KeyPath, str | None]:
    """Read ``python: op.py`` or ``python: {source: op.py, conda_env: env}``."""
    if isinstance(value, dict):
        reader.keys(path, value, PYTHON_KEYS, what="python operator")
        if value.get("conda_env") is not None:
            reader.warn(
                (*path, "conda_env"), "`conda_env` is ignored: operators run in the dataflow's Python", None
            )
        if "source" not in value:
            fix = "write `python: {source: my_operator.py}`"
            reader.error(path, "`python` has no `source`", fix, at_key=True)
            return path, None
        return (*path, "source"), _non_empty(reader, (*path, "source"), value["source"])
    return path, _non_empty(reader, path, value)


def _non_empty(reader: FieldReader, path: KeyPath, value: object) -> str | None:
    text = reader.text(path, value)
    if not text:
        if text is not None or value is None:
            reader.error(path, "the operator's Python file is not named", "write `python: my_operator.py`")
        return None
    return text
