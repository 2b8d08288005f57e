"""The public API is exactly ``doradus.__all__``: pinned here, so a change is a decision.

Import checks run in a fresh interpreter: some names load lazily on first use, and
other tests import submodules that would add attributes to the package here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import doradus

EXPORTED = [
    "ClosedError",
    "CodecError",
    "ConnectError",
    "DecodeError",
    "DescriptorError",
    "DoradusError",
    "EncodeError",
    "Error",
    "Event",
    "Input",
    "InputClosed",
    "InputRecovered",
    "MetadataError",
    "Node",
    "NodeError",
    "NodeFailed",
    "NodeRestarted",
    "ParamDeleted",
    "ParamUpdate",
    "ResourceLimitError",
    "Stop",
    "TransportError",
    "TransportTimeout",
    "UnknownOutputError",
    "__version__",
]

# `annotations` is the __future__ feature bound by `from __future__ import annotations`.
HARMLESS = {"annotations"}


def fresh(code: str) -> object:
    """Run ``code`` (which prints one JSON value) in a new interpreter and return the value."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, text=True, timeout=60
    )
    return json.loads(done.stdout)


def test_all_is_pinned_and_sorted() -> None:
    assert doradus.__all__ == EXPORTED
    assert sorted(doradus.__all__) == doradus.__all__


def test_every_exported_name_is_importable_in_a_fresh_interpreter() -> None:
    code = """
import json
namespace = {}
exec("from doradus import *", namespace)
import doradus
print(json.dumps({
    "star": sorted(n for n in namespace if n != "__builtins__"),
    "kinds": {n: type(getattr(doradus, n)).__name__ for n in doradus.__all__},
    "same": all(namespace[n] is getattr(doradus, n) for n in doradus.__all__),
}))
"""
    got = fresh(code)

    assert isinstance(got, dict)
    assert got["star"] == EXPORTED
    assert got["same"]
    assert "module" not in got["kinds"].values()
    assert got["kinds"]["__version__"] == "str"


def test_exported_objects_are_the_implementations() -> None:
    from doradus._exceptions import DecodeError
    from doradus._node.events import Input
    from doradus._node.node import Node

    assert doradus.Node is Node
    assert doradus.Input is Input
    assert doradus.DecodeError is DecodeError
    assert all(
        issubclass(getattr(doradus, n), doradus.DoradusError)
        for n in EXPORTED
        if n.endswith("Error") and n != "Error"
    )


def test_an_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = doradus.NoSuchThing
    assert not hasattr(doradus, "_node_typo")


def test_the_package_namespace_holds_nothing_public_beyond_all() -> None:
    names = fresh("import doradus, json; print(json.dumps(sorted(vars(doradus))))")

    assert isinstance(names, list)
    assert {n for n in names if not n.startswith("_")} - HARMLESS - set(EXPORTED) == set()


def test_no_private_module_name_leaks_through_exported_classes() -> None:
    leaked = {n: getattr(doradus, n).__module__ for n in EXPORTED if isinstance(getattr(doradus, n), type)}

    assert {n: m for n, m in leaked.items() if m != "doradus"} == {}


# The plug-in packages and the testing kit are public too: their names are pinned the same way.
BACKENDS = [
    "Backend",
    "BackendStatistics",
    "LinkSpec",
    "Outgoing",
    "Receiver",
    "backend_names",
    "get_backend",
]
CODECS = [
    "TAGS",
    "TAG_NAMES",
    "Buffer",
    "Codec",
    "Detects",
    "FormatSpec",
    "as_bytes",
    "codec_names",
    "get_codec",
    "get_codec_class",
]
TESTING = [
    "GARBAGE",
    "PAYLOAD_SIZES",
    "CollectingReceiver",
    "MockNode",
    "check_backend",
    "check_codec",
    "check_foreign",
    "check_unreachable",
    "decode_fully",
    "garbage_for",
    "outgoing",
]


def test_the_plug_in_packages_and_the_testing_kit_are_pinned() -> None:
    import doradus.backends
    import doradus.codecs
    import doradus.testing

    assert doradus.backends.__all__ == BACKENDS
    assert doradus.codecs.__all__ == CODECS
    assert sorted(doradus.testing.__all__) == sorted(TESTING)
    for module, names in ((doradus.backends, BACKENDS), (doradus.codecs, CODECS), (doradus.testing, TESTING)):
        assert all(hasattr(module, name) for name in names), module.__name__


# Every public name's docstring shows an example (`Example:` with `>>>` lines, or an `Example::`
# literal block): the API reference is generated from these docstrings. Read statically with
# griffe, as the reference is, so constants' attribute docstrings count.
def _public_docstrings() -> dict[str, str]:
    """Every public name of the four public modules → its docstring as the API reference reads it."""
    import griffe

    loader = griffe.GriffeLoader(search_paths=[str(Path(doradus.__file__).parent.parent)])
    package = loader.load("doradus")
    found: dict[str, str] = {}
    for module_name, names in (
        ("doradus", EXPORTED),
        ("doradus.backends", BACKENDS),
        ("doradus.codecs", CODECS),
        ("doradus.testing", TESTING),
    ):
        module = package if module_name == "doradus" else package[module_name.removeprefix("doradus.")]
        for name in names:
            if name != "__version__":
                target = module[name].final_target if module[name].is_alias else module[name]
                found[f"{module_name}.{name}"] = target.docstring.value if target.docstring else ""
    return found


EXAMPLE = re.compile(r"^\s*(Example::?\s*$|>>> )", re.MULTILINE)


def test_every_public_name_has_a_docstring_with_an_example() -> None:
    docstrings = _public_docstrings()
    without = {name for name, text in docstrings.items() if not EXAMPLE.search(text)}

    assert without == set(), "add an Example: section to these docstrings"
