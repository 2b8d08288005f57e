"""Every `type: ignore` in the package names its error code and says why it is needed."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "doradus"
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<rest>.*)$")


def unexplained(root: Path) -> list[str]:
    """`type: ignore` comments under ``root`` without an error code or a reason."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if "_pb2" in path.name:
            continue
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            match = IGNORE.search(line)
            if match is None:
                continue
            where = f"{path.relative_to(root)}:{number}"
            if not match["codes"]:
                found.append(f"{where}: no error code")
                continue
            reason_after = match["rest"].strip().lstrip("#").strip()
            above = lines[number - 2].strip() if number > 1 else ""
            if not reason_after and not above.startswith("#"):
                found.append(f"{where}: no comment saying why")
    return found


def test_every_type_ignore_names_its_code_and_its_reason() -> None:
    assert unexplained(SRC) == []


def test_the_scan_reports_a_bare_or_unexplained_ignore(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "a = f()  # type: ignore\n"
        "b = f()  # type: ignore[no-untyped-call]\n"
        "# f has no annotations\n"
        "c = f()  # type: ignore[no-untyped-call]\n"
        "d = f()  # type: ignore[no-untyped-call]  # f has no annotations\n"
    )
    assert unexplained(tmp_path) == ["m.py:1: no error code", "m.py:2: no comment saying why"]
