"""Whatever the input, the loader returns a Dataflow or raises DescriptorError.

Three generators: YAML-ish text, random structures using the dataflow
vocabulary, and random mutations of a valid dataflow. Every problem must
point inside the file and every error must carry a fix.
"""

from __future__ import annotations

import copy
import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doradus._dataflow.loader import check_dataflow, load_dataflow
from doradus._dataflow.model import Dataflow
from doradus._exceptions import DescriptorError

NOOP = str((Path(__file__).parent / "nodes" / "noop.py").resolve())
GOOD = Path(__file__).parent / "good"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_counter = itertools.count()

KEYS = [
    *("nodes", "env", "deploy", "debug", "health_check_interval", "communication", "default_data_format"),
    *("id", "path", "inputs", "outputs", "source", "queue_size", "queue_policy", "input_timeout", "args"),
    "backpressure_timeout",
    *("build", "operator", "operators", "python", "custom", "envs", "send_stdout_as", "restart_policy"),
    *("max_restarts", "restart_delay", "shared_memory_pool_size", "cpu_affinity", "machine", "git", "tag"),
    *("_unstable_deploy", "_unstable_local", "local", "data_format", "shared-library", "<<", "labels"),
]
WORDS = [
    *(NOOP, "dynamic", "shell", "python", "a", "b", "a/out", "b/out", "a/op/out", "dora/timer/millis/5"),
    *("dora/timer/hz/0.5", "dora/logs/info/a", "dora/timer/ms/1", "256MB", "500ms", "backpressure"),
    *(
        "on-failure",
        "arrow",
        "x.py",
        "./x",
        "~/x",
        "$HOME",
        "${NOPE}",
        "https://x/y.py",
        "",
        " ",
        "\0",
        "\ud800",
    ),
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(-3, 3), st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)
nodes = st.dictionaries(st.sampled_from(KEYS), values, max_size=8).map(lambda node: {"id": "a", **node})
documents = st.fixed_dictionaries(
    {"nodes": st.one_of(st.lists(nodes, max_size=4), values)},
    optional={key: values for key in KEYS[1:7]},
)
yamlish = st.text(
    alphabet=st.sampled_from([*"ab:-/ \n\t[]{}&*!|>'\"#%@,?0.~$<\\", "\u00e9", "\x07"]), max_size=80
)


def assert_well_behaved(file: Path) -> Dataflow | None:
    """Load ``file`` both ways and check the invariants every input must keep."""
    data = file.read_bytes()
    breaks = (b"\n", b"\r", "\x85".encode(), "\u2028".encode(), "\u2029".encode())  # YAML's line breaks
    lines = sum(data.count(line_break) for line_break in breaks) + 2
    dataflow, problems = check_dataflow(file)
    for problem in problems:
        assert problem.location.file == file
        assert 1 <= problem.location.line <= lines
        assert problem.location.column >= 1
        assert problem.message
        assert problem.severity in ("error", "warning")
        assert problem.fix or problem.severity == "warning", str(problem)
    errors = [p for p in problems if p.severity == "error"]
    assert (dataflow is None) == bool(errors)
    if errors:
        with pytest.raises(DescriptorError) as caught:
            load_dataflow(file)
        assert caught.value.problems == errors
        return None
    loaded = load_dataflow(file)
    assert dataflow is not None
    assert loaded.nodes == dataflow.nodes
    return loaded


def dump(folder: Path, document: object) -> Path:
    file = folder / f"fuzz-{next(_counter)}.yml"
    file.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return file


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for generated files, with the node files at ``../nodes/`` as in ``good/``."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(Path(__file__).parent / "nodes", root / "nodes")
    (root / "flows").mkdir()
    return root / "flows"


@FUZZ
@given(text=yamlish)
def test_yamlish_text(folder: Path, text: str) -> None:
    file = folder / f"text-{next(_counter)}.yml"
    file.write_text(text, encoding="utf-8", errors="surrogatepass")
    assert_well_behaved(file)


@FUZZ
@given(data=st.binary(max_size=60))
def test_random_bytes(folder: Path, data: bytes) -> None:
    file = folder / f"bytes-{next(_counter)}.yml"
    file.write_bytes(b"nodes:\n  - id: a\n    path: " + data)
    assert_well_behaved(file)


@FUZZ
@given(document=documents)
def test_random_structures(folder: Path, document: dict[str, Any]) -> None:
    assert_well_behaved(dump(folder, document))


def paths_of(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every key path inside a plain YAML value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths_of(item, (*prefix, index))
    return found


VALID = yaml.safe_load((GOOD / "operators.yml").read_text()) | {"env": {"A": 1}}
for _node in VALID["nodes"]:
    _node.pop("build", None)  # keep every missing operator file an error, not a warning
VALID_PATHS = paths_of(VALID)[1:]


def set_at(document: Any, path: tuple[object, ...], value: object) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


@FUZZ
@given(path=st.sampled_from(VALID_PATHS), value=values)
def test_mutated_valid_dataflow(folder: Path, path: tuple[object, ...], value: object) -> None:
    document = copy.deepcopy(VALID)
    set_at(document, path, value)
    assert_well_behaved(dump(folder, document))


def test_the_unmutated_document_is_valid(folder: Path) -> None:
    assert assert_well_behaved(dump(folder, VALID)) is not None
