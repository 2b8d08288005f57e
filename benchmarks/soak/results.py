"""A soak part's figures and checks, and the results files they go to.

`Part` collects checks (printed as they are made) and figures; `record` merges a part into
``benchmarks/results/soak.json`` (the other parts' last results stay) and rewrites
``soak.md``, the summary table (`table`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import REPO, RESULTS, read_json


@dataclass
class Part:
    """A part's figures and checks; failed when any check failed."""

    name: str
    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def check(self, what: str, passed: bool, detail: Any = "") -> bool:
        self.checks.append({"check": what, "passed": bool(passed), "detail": str(detail)})
        mark = "ok  " if passed else "FAIL"
        print(f"[soak {self.name}] {mark} {what}{': ' + str(detail) if detail != '' else ''}", flush=True)
        return bool(passed)

    def cleanup_checks(self, cleanup: dict[str, Any]) -> None:
        self.figures["cleanup"] = cleanup
        self.check("no process left", not cleanup["leftover_processes"], cleanup["leftover_processes"] or 0)
        self.check(
            "no /dev/shm entry left", not cleanup["shm_created_left"], cleanup["shm_created_left"] or 0
        )
        self.check("no run folder or socket left", not cleanup["runtime_left"], cleanup["runtime_left"] or 0)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c["passed"] for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "passed": self.passed,
            "seconds": round(time.monotonic() - self.started, 1),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "summary": self.summary,
            "figures": self.figures,
            "checks": self.checks,
        }


def git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip()


def machine() -> dict[str, Any]:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


COLUMNS = ("messages", "duration", "drops vs counters", "restarts", "peak RSS", "left over")


def record(part: Part, out: Path | None = None) -> dict[str, Any]:
    """Merge ``part`` into ``soak.json`` (other parts' last results stay) and rewrite ``soak.md``.

    The folder is ``benchmarks/results``, or ``$SOAK_RESULTS`` (for trial runs).
    """
    out = out or Path(os.environ.get("SOAK_RESULTS") or RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "soak.json"
    doc = read_json(path) or {}
    doc.setdefault("parts", {})[part.name] = {**part.as_json(), "machine": machine()}
    doc["command"] = "make soak"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    (out / "soak.md").write_text("# Soak and chaos\n\n" + table(doc) + "\n")
    return doc


def table(doc: dict[str, Any]) -> str:
    """The summary table of a ``soak.json``: one row per part, in the order they were recorded."""
    lines = ["| part | " + " | ".join(COLUMNS) + " | result |", "|---|" + "---|" * len(COLUMNS) + "---|"]
    for name, part in doc.get("parts", {}).items():
        cells = [part["summary"].get(c, "—") for c in COLUMNS]
        result = "pass" if part["passed"] else "FAIL"
        lines.append(f"| {name}: {part['title']} | " + " | ".join(cells) + f" | {result} |")
    return "\n".join(lines)


def fmt_mib(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} MiB"
