"""The getting-started page and the tutorials: every code block is run, or is a file a test runs.

Each ``console`` session of a guide runs for real (`doradus run`, `up`, `start`, `status`…) in a
temporary copy of the example folder it names, and what the page shows must be what it prints.
See ``doc_blocks`` for the rules.
"""

from __future__ import annotations

import pytest
from tests.docs.doc_blocks import GUIDES, ROOT, Block, blocks, run_session, snippet_paths

# What cannot run here, and why: a page may show it only with this reason in its marker.
NOT_RUN_ALLOWED = {
    "installs from the network": "docs/getting-started.md",
    "needs a container engine": "docs/getting-started.md",
    "needs several machines": "docs/tutorials/multi-machine.md",
}
# Files outside examples/tutorials that guides may include, and the test that runs or checks each.
OTHER_INCLUDES = {
    "Dockerfile": "tests/docs/test_dockerfile.py",
    ".dockerignore": "tests/docs/test_dockerfile.py",
}


def _all_blocks() -> list[Block]:
    return [block for page in GUIDES for block in blocks(page)]


def _sessions() -> list[Block]:
    return [b for b in _all_blocks() if b.marker and b.marker[0] == "run"]


def test_the_guides_exist() -> None:
    names = {page.relative_to(ROOT).as_posix() for page in GUIDES}
    topics = "pipelines writing-nodes operators data-formats backends multi-machine"
    topics += " fault-handling performance testing-nodes migrating-from-dora"
    assert names >= {"docs/getting-started.md", *(f"docs/tutorials/{t}.md" for t in topics.split())}


def test_every_block_is_run_or_included() -> None:
    problems = []
    for block in _all_blocks():
        paths = snippet_paths(block)
        if paths is not None:
            for path in paths:
                if not (ROOT / path).is_file():
                    problems.append(f"{block.where}: includes {path}, which does not exist")
                elif not (path.startswith("examples/tutorials/") or path in OTHER_INCLUDES):
                    problems.append(f"{block.where}: includes {path}, which no guide test runs")
        elif block.marker and block.marker[0] == "run":
            if block.lang != "console":
                problems.append(f"{block.where}: a run marker on a `{block.lang}` block (use console)")
        elif block.marker and block.marker[0] == "not-run":
            page = NOT_RUN_ALLOWED.get(block.marker[1])
            if page != block.page.relative_to(ROOT).as_posix():
                problems.append(f"{block.where}: not-run reason {block.marker[1]!r} is not allowed here")
        else:
            problems.append(
                f"{block.where}: a code block that no test runs (include a file or mark a session)"
            )
    assert problems == []


def test_every_included_example_is_run() -> None:
    """A file shown from examples/tutorials/<topic>/ belongs to a folder a session runs."""
    run_folders = {b.marker[1].split()[0] for b in _sessions() if b.marker}
    problems = []
    for block in _all_blocks():
        for path in snippet_paths(block) or []:
            if path.startswith("examples/tutorials/"):
                folder = "/".join(path.split("/")[:3])
                if folder not in run_folders:
                    problems.append(f"{block.where}: {path} is shown, but no session runs {folder}")
    assert problems == []


@pytest.mark.parametrize("block", _sessions(), ids=lambda b: b.where)
def test_session_prints_what_the_page_shows(block: Block) -> None:
    assert block.marker is not None
    folder, *flags = block.marker[1].split()
    assert (ROOT / folder).is_dir(), f"{block.where}: no folder {folder}"
    assert run_session(block, folder, fails="fails" in flags) == []
