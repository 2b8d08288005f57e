"""Which code a results file measured, and whether its figures may be published.

Every results file records the commit and whether the work tree was clean when the suite
started and when it finished (`git_state`). Publishing (rewriting a table in `docs/`) is
refused for figures measured on a dirty tree, or on a tree whose measured code has changed
since (`publish_refusal`): a published table always describes one commit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# What decides the figures: the product, the benchmark code and the pinned environments.
MEASURED_PATHS = ("src", "benchmarks", "requirements", "pyproject.toml")
# Written by the suites themselves; never part of what was measured.
OUTPUTS = ("benchmarks/results",)


def _git(repo: Path, *args: str) -> tuple[int, str]:
    try:
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return out.returncode, out.stdout.rstrip("\n")


def git_state(repo: Path = REPO) -> dict[str, Any]:
    """The commit checked out and the files that differ from it (untracked ones included).

    `clean` is None when this is not a git work tree (nothing can be published from it).
    """
    code, commit = _git(repo, "rev-parse", "HEAD")
    commit = commit.strip()
    if code != 0 or not commit:
        return {"commit": None, "short": "unknown", "clean": None, "changed": [], "changed_count": 0}
    _, status = _git(repo, "status", "--porcelain", "--untracked-files=all")
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    return {
        "commit": commit,
        "short": commit[:10],
        "clean": not changed,
        "changed": changed[:50],  # the first ones, to say which
        "changed_count": len(changed),
    }


def _count(state: dict[str, Any]) -> int:
    return int(state.get("changed_count", len(state.get("changed", []))))


def describe(state: dict[str, Any]) -> str:
    """`abc1234567 (clean)` or `abc1234567 + 12 changed files`, for headers and messages."""
    if state.get("commit") is None:
        return "no git commit"
    if state.get("clean"):
        return f"{state['short']} (clean tree)"
    return f"{state['short']} + {_count(state)} changed file(s) (dirty tree)"


def publish_refusal(recorded: dict[str, Any], repo: Path = REPO) -> str | None:
    """Why figures measured at `recorded` (a results file's `meta.git`) must not be published now.

    None when they may: the tree was clean when the run started and when it ended, and the
    measured code (`MEASURED_PATHS`, outputs aside) is the same now as at that commit.
    """
    start, end = recorded.get("start", recorded), recorded.get("end", recorded)
    for when, state in (("started", start), ("finished", end)):
        if state.get("commit") is None:
            return f"the suite {when} outside a git work tree: nothing says which code it measured"
        if not state.get("clean"):
            files = ", ".join(state.get("changed", [])[:5])
            return (
                f"the tree was dirty when the suite {when} ({_count(state)} changed "
                f"file(s): {files}…): commit first, then measure again"
            )
    if start["commit"] != end["commit"]:
        return f"the commit changed while the suite ran ({start['short']} → {end['short']})"
    excludes = [f":(exclude){p}" for p in OUTPUTS]
    code, _ = _git(repo, "diff", "--quiet", start["commit"], "--", *MEASURED_PATHS, *excludes)
    _, untracked = _git(
        repo, "status", "--porcelain", "--untracked-files=all", "--", *MEASURED_PATHS, *excludes
    )
    if code != 0 or untracked:
        return (
            f"the measured code differs from {start['short']}, the commit the figures were measured at "
            f"(`git diff {start['short']} -- {' '.join(MEASURED_PATHS)}`): measure again"
        )
    return None


def start_refusal(full: bool, state: dict[str, Any]) -> str | None:
    """Why a publishing run must not start: not the full plan, or not a clean git tree."""
    if not full:
        return "only a full run is published (no --quick, and no option that leaves part of it out)"
    if state.get("clean") is None:
        return "this is not a git work tree: nothing would say which code was measured"
    if not state["clean"]:
        files = ", ".join(state["changed"][:5])
        return (
            f"the work tree is dirty ({_count(state)} changed file(s): {files}…); "
            "commit first, or measure without --publish"
        )
    return None
