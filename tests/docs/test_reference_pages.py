"""The generated reference pages say what the CLI, the HTTP API and the stream really offer.

tools/docs_reference.py writes them while the site builds; these tests hold its output against
the sources: every command's `--help` (run through click, as a user would), every route and
body of docs/openapi.json, every message of docs/stream-schema.json. The griffe extension that
makes `Example:`/`Example::` sections render is checked on docstrings shaped like the package's.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from doradus.cli._main import cli

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


generator = _load(ROOT / "tools" / "docs_reference.py")
griffe_examples = _load(ROOT / "docs" / "hooks" / "griffe_examples.py")


def _sections(page: str) -> dict[str, str]:
    """The CLI page's text per command (`doradus node restart` → its section)."""
    parts = re.split(r"^#{2,4} `(doradus[^`]*)`$", page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _help_options(help_text: str) -> set[str]:
    """The option names click's help lists in its Options section (first column only)."""
    listing = help_text.split("Options:", 1)[-1].split("Commands:", 1)[0]
    columns = [
        re.split(r"\s{2,}", line.strip())[0] for line in listing.splitlines() if line.startswith("  -")
    ]
    return {name for column in columns for name in re.findall(r"--[a-z][\w-]*", column)}


@pytest.fixture(scope="module")
def cli_sections() -> dict[str, str]:
    return _sections(generator.cli_page())


def test_every_command_and_every_option_of_its_help_is_on_the_cli_page(cli_sections: dict[str, str]) -> None:
    runner = CliRunner()
    commands = [" ".join(path) for path, _ in generator.walk(cli, ("doradus",))]
    assert {"doradus run", "doradus node restart", "doradus profile show"} <= set(commands)
    assert sorted(cli_sections) == sorted(commands)

    for command in commands:
        shown = runner.invoke(cli, [*command.split()[1:], "--help"], terminal_width=200)
        assert shown.exit_code == 0, (command, shown.output)
        options = _help_options(shown.output)
        missing = {o for o in options if f"`{o}`" not in cli_sections[command]}
        assert missing == set(), command


def test_option_defaults_and_choices_are_shown(cli_sections: dict[str, str]) -> None:
    status = cli_sections["doradus status"]

    assert re.search(r"\| `--output`, `--format` \| `table` \\\| `json` \\\| `yaml` \| `table` \|", status)
    assert "| `--retries` | integer range | `2` |" in status


def test_every_route_and_body_of_the_openapi_file_is_on_the_http_page() -> None:
    spec = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    page = generator.http_page()

    for path, methods in spec["paths"].items():
        for method in methods:
            assert f"### `{method.upper()} {path}`" in page
    for name in spec["components"]["schemas"]:
        assert f"\n### {name}\n" in page


def test_every_message_of_the_stream_schema_is_on_the_stream_page() -> None:
    schema = json.loads((ROOT / "docs" / "stream-schema.json").read_text(encoding="utf-8"))
    page = generator.stream_page()

    for name, definition in schema["$defs"].items():
        assert f"\n### {name}\n" in page
        for field in definition.get("properties", {}):
            assert f"| `{field}` |" in page, (name, field)


def test_a_literal_example_becomes_a_fenced_block_and_a_doctest_example_a_section() -> None:
    doc = "Start it.\n\nArgs:\n    x: a thing.\n\nExample::\n\n    node = Node()\n\n    node.close()\n"

    assert griffe_examples.rewrite(doc).splitlines()[-6:] == [
        "Examples:",
        "    ```python",
        "    node = Node()",
        "",
        "    node.close()",
        "    ```",
    ]
    assert (
        griffe_examples.rewrite("Do.\n\n    Example:\n        >>> 1\n        1").splitlines()[2]
        == "    Examples:"
    )


@pytest.mark.parametrize("module", [generator, griffe_examples], ids=lambda m: m.__name__)
def test_the_examples_of_the_docs_tools_run(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)

    assert result.attempted > 0
    assert result.failed == 0
