"""Raw memory stays in `doradus._unsafe`, and every unsafe operation there says why it is safe.

What counts as raw memory: importing ``ctypes`` (whose ``cast``, ``from_address``,
``string_at``, ``memmove`` … all need it), ``mmap`` or ``cffi``; numpy's ``.ctypes`` and
``np.ctypeslib``; building an Arrow buffer from an address (``foreign_buffer``); and handing
numpy an address (defining ``__array_interface__``); a view over another library's shared
memory (iceoryx2's ``as_memory_view``). ``typing.cast`` and ``memoryview.cast``
are not raw memory (one is a no-op, the other bounds-checked) and are not flagged.
The import-linter contracts in pyproject.toml say the same for imports; this test also sees
what imports do not show.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "doradus"
UNSAFE = SRC / "_unsafe"
RAW_MODULES = {"ctypes", "_ctypes", "mmap", "cffi"}
RAW_NAMES = {
    "foreign_buffer",
    "from_address",
    "from_buffer",
    "from_buffer_copy",
    "addressof",
    "string_at",
    "wstring_at",
    "memmove",
    "memset",
    "ctypes",
    "ctypeslib",
    "as_memory_view",
}
"""Attribute or name uses that reach raw memory (``arr.ctypes.data``, ``pa.foreign_buffer``)."""
ADDRESS_PROTOCOLS = {"__array_interface__", "__array_struct__"}
UNSAFE_CALLS = {
    "CDLL",
    "addressof",
    "foreign_buffer",
    "from_address",
    "string_at",
    "memmove",
    "_mmap",
    "_munmap",
    "as_memory_view",
}
"""Calls inside `_unsafe` that must each carry a ``# SAFETY:`` comment."""
SAFETY_WINDOW = 6
"""Lines above an unsafe operation where its ``# SAFETY:`` comment may start."""
MAX_UNSAFE_LINES = 500


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):  # `_prctl()(...)`: the function a call returned
        return _name(node.func)
    return None


def raw_memory_uses(path: Path) -> list[str]:
    """``file:line what`` for every raw-memory operation in one module."""
    tree = ast.parse(path.read_text())
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] in RAW_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in RAW_MODULES:
            found.append((node.lineno, f"from {node.module} import"))
        elif isinstance(node, ast.ImportFrom):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name in RAW_NAMES]
        elif isinstance(node, ast.Attribute | ast.Name) and _name(node) in RAW_NAMES:
            found.append((node.lineno, str(_name(node))))
        elif isinstance(node, ast.FunctionDef) and node.name in ADDRESS_PROTOCOLS:
            found.append((node.lineno, f"def {node.name}"))
    return [f"{path.name}:{line} {what}" for line, what in sorted(set(found))]


def unexplained_unsafe_operations(path: Path) -> list[str]:
    """Unsafe operations of an `_unsafe` module without a ``# SAFETY:`` comment just above them."""
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    sites: list[tuple[int, int, str]] = []  # (first line, last line where the comment may be, what)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in UNSAFE_CALLS:
            sites.append((node.lineno, node.lineno, f"{_name(node.func)}()"))
        elif isinstance(node, ast.keyword) and node.arg == "preexec_fn":
            sites.append((node.lineno, node.lineno, "preexec_fn"))
        elif isinstance(node, ast.FunctionDef) and node.name in ADDRESS_PROTOCOLS:
            sites.append((node.lineno, node.end_lineno or node.lineno, node.name))
    missing = []
    for first, last, what in sites:
        window = lines[max(0, first - 1 - SAFETY_WINDOW) : last]
        if not any(line.strip().startswith("# SAFETY") for line in window):
            missing.append(f"{path.name}:{first} {what}")
    return sorted(set(missing))


def _outside_unsafe() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if UNSAFE not in p.parents and "_pb2" not in p.name)


def test_no_module_outside_unsafe_reaches_raw_memory() -> None:
    uses = [use for path in _outside_unsafe() for use in raw_memory_uses(path)]
    assert uses == [], "raw memory belongs in doradus._unsafe (with a # SAFETY: comment): " + ", ".join(uses)


def test_the_unsafe_package_is_where_the_raw_memory_is() -> None:
    uses = {path.name for path in UNSAFE.glob("*.py") if raw_memory_uses(path)}
    assert {"memory.py", "arrow_buffers.py", "keeper_process.py", "iceoryx2_samples.py"} <= uses


def test_every_unsafe_operation_says_why_it_is_safe() -> None:
    missing = [site for path in sorted(UNSAFE.glob("*.py")) for site in unexplained_unsafe_operations(path)]
    assert missing == []


def test_unsafe_modules_stay_small_enough_to_review() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in UNSAFE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n >= MAX_UNSAFE_LINES} == {}


def test_the_keeper_process_imports_only_the_standard_library() -> None:
    # It runs as `python -I -S keeper_process.py`: no site packages, not even Doradus.
    tree = ast.parse((UNSAFE / "keeper_process.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported - set(sys.stdlib_module_names) - {"__future__"} == set()


@pytest.mark.parametrize(
    ("code", "flagged"),
    [
        ("import mmap\n", "import mmap"),
        ("from ctypes import cast\n", "from ctypes import"),
        ("import numpy as np\np = np.zeros(3).ctypes.data\n", "ctypes"),
        ("import pyarrow as pa\nb = pa.foreign_buffer(1, 2)\n", "foreign_buffer"),
        ("class R:\n    def __array_interface__(self):\n        return {}\n", "def __array_interface__"),
        ("from pyarrow import foreign_buffer\n", "import foreign_buffer"),
    ],
)
def test_the_scan_catches_raw_memory(tmp_path: Path, code: str, flagged: str) -> None:
    module = tmp_path / "sneaky.py"
    module.write_text(code)
    assert [use.split(" ", 1)[1] for use in raw_memory_uses(module)][:1] == [flagged]


def test_the_scan_lets_safe_casts_through(tmp_path: Path) -> None:
    module = tmp_path / "fine.py"
    module.write_text("from typing import cast\nx = cast('int', 1)\ny = memoryview(b'ab').cast('B')\n")
    assert raw_memory_uses(module) == []


def test_an_unsafe_operation_without_its_comment_is_caught(tmp_path: Path) -> None:
    module = tmp_path / "unexplained.py"
    module.write_text(
        "import ctypes\n"
        "# SAFETY: the C library of this process.\n"
        "libc = ctypes.CDLL(None)\n"
        "\n\n\n\n\n\n\n"
        "value = ctypes.c_int(0)\n"
        "address = ctypes.addressof(value)\n"
    )
    assert unexplained_unsafe_operations(module) == ["unexplained.py:12 addressof()"]
