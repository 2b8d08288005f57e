"""Reading the per-node fields shared by nodes, 0.x ``custom:`` nodes and operators.

Inputs, outputs, ``send_stdout_as``, ``build``, ``args`` and ``env`` are read
the same way wherever they appear; each reader records problems on the
`FieldReader` and returns what it could read.

Example:
    >>> from pathlib import Path
    >>> from doradus._dataflow.yaml_positions import parse_yaml
    >>> doc, _ = parse_yaml("inputs: {tick: dora/timer/millis/5}", Path("d.yml"))
    >>> reader = FieldReader(doc.positions)
    >>> ports = read_inputs(reader, ("inputs",), doc.value["inputs"])
    >>> ports.inputs["tick"].source.interval_ns
    5000000
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from doradus._dataflow.fields import FieldReader
from doradus._dataflow.model import DEFAULT_BACKPRESSURE_TIMEOUT, DEFAULT_QUEUE_SIZE, InputSpec, QueuePolicy
from doradus._dataflow.problems import shorten
from doradus._dataflow.sources import SourceError, parse_source
from doradus._dataflow.yaml_positions import KeyPath

INPUT_KEYS = frozenset(
    {"source", "queue_size", "queue_policy", "backpressure_timeout", "input_timeout", "schema", "data_format"}
)
QUEUE_POLICIES: tuple[QueuePolicy, ...] = ("drop_oldest", "backpressure")

_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_SOURCE_TYPES = "a source like `node/output` or a mapping with a `source`"


@dataclass
class Inputs:
    """The inputs read from one ``inputs:`` mapping.

    ``source_paths`` maps each input id to the key path of its source text,
    so that a later check of the source against other nodes can point at it.
    ``complete`` is False when some input could not be read.

    Example:
        >>> Inputs().complete
        True
    """

    inputs: dict[str, InputSpec] = field(default_factory=dict)
    source_paths: dict[str, KeyPath] = field(default_factory=dict)
    complete: bool = True


def read_inputs(reader: FieldReader, path: KeyPath, value: object) -> Inputs:
    """Read an ``inputs:`` mapping of input id to source (short or long form).

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("d.yml"), {}, {}))
        >>> spec = read_inputs(reader, ("inputs",), {"a": {"source": "x/y", "queue_size": 2}})
        >>> spec.inputs["a"].queue_size
        2
    """
    result = Inputs()
    mapping = reader.mapping(path, value)
    if mapping is None:
        result.complete = value is None
        return result
    for input_id, item in mapping.items():
        spec = _read_input(reader, (*path, input_id), input_id, item, result)
        if spec is None:
            result.complete = False
        else:
            result.inputs[spec.id] = spec
    return result


def _read_input(
    reader: FieldReader, path: KeyPath, input_id: object, value: object, into: Inputs
) -> InputSpec | None:
    if not isinstance(input_id, str) or not input_id:
        reader.error(path, f"input id `{input_id}` must be non-empty text", "quote the input id", at_key=True)
        return None
    if isinstance(value, str):
        return _input_spec(reader, path, path, value, {}, into)
    if isinstance(value, dict):
        reader.keys(path, value, INPUT_KEYS, what="input")
        if "source" not in value:
            fix = "add `source: node/output` (or a timer like `dora/timer/millis/20`)"
            reader.error(path, f"input `{input_id}` has no `source`", fix, at_key=True)
            return None
        source = value["source"]
        if not isinstance(source, str):
            reader.type_error(
                (*path, "source"), source, "a source like `node/output`", "write `source: node/output`"
            )
            return None
        return _input_spec(reader, path, (*path, "source"), source, value, into)
    fix = f"write `{input_id}: node/output`, or `{input_id}: {{source: node/output, queue_size: 10}}`"
    reader.type_error(path, value, _SOURCE_TYPES, fix)
    return None


def _input_spec(
    reader: FieldReader, path: KeyPath, source_path: KeyPath, text: str, options: dict[Any, Any], into: Inputs
) -> InputSpec | None:
    """Build one input; ``path`` is the input's own key path, ``options`` its long form."""
    input_id = str(path[-1])
    queue_size = reader.integer((*path, "queue_size"), options.get("queue_size"), minimum=1)
    policy = reader.choice((*path, "queue_policy"), options.get("queue_policy"), QUEUE_POLICIES)
    timeout = reader.duration((*path, "input_timeout"), options.get("input_timeout"), positive=True)
    wait_key = "backpressure_timeout"
    waited = reader.duration((*path, wait_key), options.get(wait_key), positive=True)
    source = parse_source(text)
    if isinstance(source, SourceError):
        reader.error(source_path, source.message, source.fix)
        return None
    if _bad_option(options, "queue_size", queue_size) or _bad_option(options, "queue_policy", policy):
        return None
    if _bad_option(options, "input_timeout", timeout) or _bad_option(options, "backpressure_timeout", waited):
        return None
    if waited is not None and policy != "backpressure":
        reader.warn(
            (*path, "backpressure_timeout"),
            f"`backpressure_timeout` has no effect: input `{input_id}` drops its oldest message "
            "when its queue is full (queue_policy: drop_oldest)",
            "add `queue_policy: backpressure`, or remove `backpressure_timeout`",
            at_key=True,
        )
    into.source_paths[input_id] = source_path
    return InputSpec(
        id=input_id,
        source=source,
        queue_size=DEFAULT_QUEUE_SIZE if queue_size is None else queue_size,
        queue_policy="drop_oldest" if policy is None else _policy(policy),
        input_timeout=timeout,
        backpressure_timeout=DEFAULT_BACKPRESSURE_TIMEOUT if waited is None else waited,
    )


def _bad_option(options: dict[Any, Any], key: str, read: object) -> bool:
    """Whether an option was given (not null) but could not be read."""
    return options.get(key) is not None and read is None


def _policy(name: str) -> QueuePolicy:
    return "backpressure" if name == "backpressure" else "drop_oldest"


def read_outputs(reader: FieldReader, path: KeyPath, value: object) -> tuple[tuple[str, ...], bool]:
    """Read an ``outputs:`` list of unique ids; returns ``(outputs, complete)``.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("d.yml"), {}, {}))
        >>> read_outputs(reader, ("outputs",), ["a", "b"])
        (('a', 'b'), True)
    """
    items = reader.texts(path, value)
    if items is None:
        return (), value is None
    seen: dict[str, int] = {}
    complete = True
    for index, output in enumerate(items):
        if not output.strip():
            reader.error((*path, index), "an output id must not be empty", "name the output, e.g. `- image`")
            complete = False
        elif output in seen:
            first = reader.positions.value_at((*path, seen[output]))
            message = (
                f"duplicate output `{shorten(output)}` (first at line {first.line}, column {first.column})"
            )
            reader.error((*path, index), message, "list each output once")
        else:
            seen[output] = index
    return tuple(seen), complete


def read_send_stdout_as(
    reader: FieldReader, path: KeyPath, value: object, outputs: tuple[str, ...] | None
) -> str | None:
    """Read ``send_stdout_as``, which must name one of ``outputs`` (None: unknown).

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("d.yml"), {}, {}))
        >>> read_send_stdout_as(reader, ("send_stdout_as",), "log", ("log",))
        'log'
    """
    output = reader.text(path, value)
    if output is None or outputs is None or output in outputs:
        return output
    listed = ", ".join(f"`{name}`" for name in outputs) or "none"
    reader.error(
        path,
        f"`send_stdout_as` names `{shorten(output)}`, which is not among the outputs ({listed})",
        f"add `{shorten(output)}` to `outputs`, or name one of the listed outputs",
    )
    return None


def read_build(reader: FieldReader, path: KeyPath, value: object) -> tuple[str, ...]:
    r"""Read ``build``: one command per non-empty line.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("d.yml"), {}, {}))
        >>> read_build(reader, ("build",), "pip install -e .\n\ncargo build\n")
        ('pip install -e .', 'cargo build')
    """
    text = reader.text(path, value)
    if text is None:
        return ()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def read_args(reader: FieldReader, path: KeyPath, value: object) -> tuple[str, ...]:
    """Read ``args``: one string split like a shell would, or a list of strings.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("d.yml"), {}, {}))
        >>> read_args(reader, ("args",), "--name 'a b' -v")
        ('--name', 'a b', '-v')
    """
    if isinstance(value, list):
        return tuple(reader.texts(path, value) or ())
    if value is None:
        return ()
    if not isinstance(value, str):
        reader.type_error(
            path, value, "text or a list of text", "write `args: --flag value` or `args: [--flag, value]`"
        )
        return ()
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        reader.error(
            path, f"cannot split `args` into words: {exc}", "close the quote, or escape it with `\\`"
        )
        return ()


def read_env(
    reader: FieldReader, path: KeyPath, value: object, variables: Mapping[str, str]
) -> dict[str, str]:
    """Read an ``env:`` mapping; values become strings with ``$VAR`` expanded.

    Booleans become ``true``/``false``, numbers their decimal text. A
    variable that is not set is left as written, with a warning.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("d.yml"), {}, {}))
        >>> read_env(reader, ("env",), {"A": True, "B": 3, "C": "${HOME}/x"}, {"HOME": "/h"})
        {'A': 'true', 'B': '3', 'C': '/h/x'}
    """
    mapping = reader.mapping(path, value)
    env: dict[str, str] = {}
    for name, item in (mapping or {}).items():
        item_path = (*path, name)
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            fix = "use a name of letters, digits and `_`"
            reader.error(item_path, f"`{name}` is not a usable environment variable name", fix, at_key=True)
        elif isinstance(item, bool):
            env[name] = "true" if item else "false"
        elif isinstance(item, (int, float)):
            env[name] = str(item)
        elif isinstance(item, str):
            env[name] = expand_variables(reader, item_path, item, variables)
        else:
            fix = f"write `{name}` as text, a number or `true`/`false`; quote a list or mapping to pass it"
            reader.type_error(item_path, item, "text, a number or a boolean", fix)
    return env


def expand_variables(reader: FieldReader, path: KeyPath, text: str, variables: Mapping[str, str]) -> str:
    """Replace ``$VAR`` and ``${VAR}`` in ``text``; warn about unset ones.

    Example:
        >>> from pathlib import Path
        >>> from doradus._dataflow.yaml_positions import Positions
        >>> reader = FieldReader(Positions(Path("d.yml"), {}, {}))
        >>> expand_variables(reader, ("env", "P"), "$A:${A}", {"A": "1"})
        '1:1'
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in variables:
            return variables[name]
        reader.warn(
            path,
            f"environment variable `{name}` is not set; `{match.group(0)}` is kept as written",
            f"set `{name}` before starting the dataflow (or pass it with `--env {name}=...`)",
        )
        return match.group(0)

    return _VARIABLE.sub(replace, text)
