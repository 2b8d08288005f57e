"""Every `>>>` example in the package's docstrings runs, and shows what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import pytest

import doradus

# The dora compatibility module is left out: importing it here would shadow the real `dora`.
# Generated protobuf modules hold no examples. `__main__` modules run the CLI when imported.
SKIPPED_MODULES = ("doradus._compat", "_pb2", "__main__")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
SCHEMAS = Path(__file__).parent / "codecs" / "schemas"


def _schema_codec(module: str) -> dict[str, Any]:
    """The ``codec`` the examples of a schema-driven codec module speak of.

    Their examples name ``reading.capnp`` / ``reading.fbs``: they run in the folder of the
    test schemas, as pytest's ``doctest_namespace`` would arrange.
    """
    from doradus.codecs import FormatSpec, get_codec

    fmt, file = {
        "doradus.codecs._capnp": ("capnp", "reading.capnp"),
        "doradus.codecs._flatbuffers": (
            "flatbuffers",
            "reading.fbs",
        ),
    }[module]
    return {"codec": get_codec(FormatSpec(fmt, SCHEMAS / file, "Reading"))}


NAMESPACES = {"doradus.codecs._capnp": _schema_codec, "doradus.codecs._flatbuffers": _schema_codec}


def _modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(doradus.__path__, "doradus.")
        if not any(part in info.name for part in SKIPPED_MODULES)
    )


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found: dict[str, doctest.DocTest] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples:
                found.setdefault(test.name, test)
    return sorted(found.values(), key=lambda t: t.name)


DOCTESTS = _doctests()


def test_the_package_has_examples_and_none_is_skipped() -> None:
    skip = doctest.OPTIONFLAGS_BY_NAME["SKIP"]
    skipped = [t.name for t in DOCTESTS for example in t.examples if example.options.get(skip)]
    assert skipped == [], "examples marked +SKIP never run: make them runnable"
    assert sum(len(t.examples) for t in DOCTESTS) > 400


@pytest.mark.parametrize("test", DOCTESTS, ids=[t.name for t in DOCTESTS])
def test_docstring_examples(test: doctest.DocTest, monkeypatch: pytest.MonkeyPatch) -> None:
    module = test.globs["__name__"]
    if module in NAMESPACES:
        monkeypatch.chdir(SCHEMAS)
        test.globs.update(NAMESPACES[module](module))
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test, out=report.append, clear_globs=True)
    assert result.failed == 0, "".join(report)
