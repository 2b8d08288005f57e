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
    # The package itself too: the classes it exports say `__module__ = "doradus"`, so the finder
    # takes their examples from there, not from the module that defines them.
    for name in ["doradus", *_modules()]:
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples:
                found.setdefault(test.name, test)
    for test in _attribute_doctests():
        found.setdefault(test.name, test)
    return sorted(found.values(), key=lambda t: t.name)


def _attribute_doctests() -> list[doctest.DocTest]:
    """The examples of module-level names documented by a string after their assignment.

    `doctest` never sees those strings (they are not ``__doc__`` of anything); griffe reads
    them as the API reference does.
    """
    import griffe

    loader = griffe.GriffeLoader(search_paths=[str(Path(doradus.__file__).parent.parent)])
    package = loader.load("doradus")
    parser = doctest.DocTestParser()
    tests: list[doctest.DocTest] = []
    modules = [package]
    while modules:
        module = modules.pop()
        if any(part in module.path for part in SKIPPED_MODULES):
            continue
        for member in module.members.values():
            if member.is_alias:
                continue
            if member.is_module:
                modules.append(member)
            elif member.is_attribute and member.docstring is not None and ">>>" in member.docstring.value:
                namespace = dict(vars(importlib.import_module(module.path)))
                test = parser.get_doctest(
                    member.docstring.value, namespace, member.path, str(module.filepath), member.lineno
                )
                tests.append(test)
    return tests


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
