"""Reference pages generated from what they describe: the CLI, the HTTP API, the stream.

`docs/hooks/reference_pages.py` calls `pages()` while the site builds, so the CLI reference is
read from the click command tree itself and the HTTP and stream references from
docs/openapi.json and docs/stream-schema.json: they cannot drift from the code. Run it by hand
to see one page: `python tools/docs_reference.py cli` (or `http`, `stream`).
"""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

GENERATED = "<!-- Generated at build time by tools/docs_reference.py: edit the source, not this page. -->"


def _cell(text: object) -> str:
    """Text made safe for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


# --- the CLI ---------------------------------------------------------------------------------


def walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command of the tree under ``command`` with its full name, depth first, sorted.

    Aliases registered under a second name (``validate`` for ``check``) appear once per name.
    """
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=path[-1])
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, (*path, name))


def _default(param: click.Parameter) -> str:
    """The default as a reader would type it, or an empty cell when there is none."""
    if isinstance(param, click.Option) and param.is_flag and not param.default:
        return ""
    default = param.default
    if default is None or callable(default) or type(default).__name__ in {"Sentinel", "_Unset"}:
        return ""
    if str(default).startswith("Sentinel."):
        return ""
    if isinstance(default, tuple | list):
        return ", ".join(f"`{item}`" for item in default)
    return f"`{default}`"


def _option_row(param: click.Parameter) -> str:
    """One row of a command's option table."""
    names = ", ".join(f"`{name}`" for name in (*param.opts, *param.secondary_opts))
    kind = "flag" if isinstance(param, click.Option) and param.is_flag else param.type.name
    if isinstance(param.type, click.Choice):
        kind = " | ".join(f"`{choice}`" for choice in param.type.choices)
    help_text = getattr(param, "help", None) or ""
    envvar = getattr(param, "envvar", None)
    if envvar and "[env:" not in help_text:
        help_text += f" [env: {envvar}]"
    return f"| {names} | {_cell(kind)} | {_default(param)} | {_cell(help_text)} |"


def _command_section(path: tuple[str, ...], command: click.Command) -> list[str]:
    """A command's heading, usage, help text, arguments and options."""
    ctx = click.Context(command, info_name=" ".join(path))
    lines = [f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`", ""]
    lines += ["```text", command.get_usage(ctx).strip(), "```", ""]
    if command.help:
        lines += [_help_text(command.help), ""]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if arguments:
        lines += ["Arguments: " + ", ".join(f"`{p.human_readable_name}`" for p in arguments), ""]
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    options.append(click.Option(["--help"], is_flag=True, help="Show this message and exit."))
    lines += ["| option | type | default | description |", "|---|---|---|---|"]
    lines += [_option_row(option) for option in options]
    if isinstance(command, click.Group):
        names = command.list_commands(ctx)
        lines += ["", "Commands: " + ", ".join(f"[`{name}`](#{_anchor((*path, name))})" for name in names)]
    return [*lines, ""]


def _help_text(text: str) -> str:
    """A command's help as Markdown: dedented, click's no-rewrap markers and `` quotes removed."""
    first, _, rest = click.unstyle(text).partition("\n")
    cleaned = inspect.cleandoc(first + "\n" + textwrap.dedent(rest)).replace("\b\n", "")
    return cleaned.replace("``", "`")


def _anchor(path: tuple[str, ...]) -> str:
    """The anchor the toc extension gives a command's heading (`doradus node restart`)."""
    return "-".join(path).replace("_", "")


def cli_page(root: click.Command | None = None) -> str:
    """The CLI reference: every command of ``doradus`` with its help and options.

    Example:
        >>> import click
        >>> @click.command()
        ... @click.option("--count", default=3, help="How many.")
        ... def hello(count: int) -> None:
        ...     '''Say hello.'''
        >>> page = cli_page(hello)
        >>> "| `--count` | integer | `3` | How many. |" in page
        True
    """
    if root is None:
        from doradus.cli._main import cli

        root = cli
    name = "doradus" if root.name == "cli" else root.name or "doradus"
    lines = [
        "# Command-line reference",
        "",
        GENERATED,
        "",
        f"Every command of `{name}`, read from the command tree itself when the site is built.",
        "How the commands are used together (finding the coordinator, exit codes, JSON shapes)",
        "is in [the command line guide](../cli.md).",
        "",
    ]
    for path, command in walk(root, (name,)):
        lines += _command_section(path, command)
    return "\n".join(lines)


def _linked(text: str) -> str:
    """A description with the pages it names (`docs/stream.md`) made links from docs/reference/."""
    text = text.replace("docs/stream-schema.json", "[stream-schema.json](../stream-schema.json)")
    return text.replace("docs/stream.md", "[the live stream](../stream.md)")


# --- JSON Schema rendering (shared by the HTTP and stream pages) ------------------------------


def _type_of(schema: dict[str, Any]) -> str:
    """A schema's type in a few words: `string`, `array of NodeStatus`, `Edge or null`."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_type_of(option) for option in schema[key])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_type_of(schema['additionalProperties'])}"
    return str(kind)


def _definition(name: str, schema: dict[str, Any]) -> list[str]:
    """One named schema: its description and a table of its properties."""
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [str(schema["description"]).strip(), ""]
    properties: dict[str, dict[str, Any]] = schema.get("properties", {})
    if not properties:
        if "oneOf" in schema or "anyOf" in schema:
            lines += [f"One of: {_type_of(schema)}.", ""]
        return lines
    required = set(schema.get("required", []))
    lines += ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for field, spec in properties.items():
        default = f"`{json.dumps(spec['default'])}`" if "default" in spec else ""
        mark = "yes" if field in required else ""
        description = _cell(spec.get("description", ""))
        lines.append(f"| `{field}` | {_type_of(spec)} | {mark} | {_cell(default)} | {description} |")
    return [*lines, ""]


# --- the HTTP API ----------------------------------------------------------------------------


def _operation(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """One route: method and path, what it does, its parameters, body and responses."""
    lines = [f"### `{method.upper()} {path}`", ""]
    if operation.get("summary"):
        lines += [f"**{operation['summary']}.** " + str(operation.get("description", "")).strip(), ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for parameter in parameters:
            lines.append(
                f"| `{parameter['name']}` | {parameter['in']} | {_type_of(parameter.get('schema', {}))} | "
                f"{'yes' if parameter.get('required') else ''} | {_cell(parameter.get('description', ''))} |"
            )
        lines.append("")
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        lines += [f"Request body (JSON): {_type_of(body['schema'])}", ""]
    lines += ["| status | meaning | body |", "|---|---|---|"]
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {}).get("application/json")
        shape = _type_of(content["schema"]) if content else ""
        lines.append(f"| {status} | {_cell(response.get('description', ''))} | {shape} |")
    return [*lines, ""]


def http_page(spec_path: Path = DOCS / "openapi.json") -> str:
    """The coordinator's HTTP API: every route and every body shape, from its OpenAPI file.

    Example:
        >>> page = http_page()
        >>> "### `GET /api/v1/dataflows`" in page
        True
    """
    spec: dict[str, Any] = json.loads(spec_path.read_text(encoding="utf-8"))
    info = spec.get("info", {})
    lines = [
        "# HTTP API reference",
        "",
        GENERATED,
        "",
        f"{info.get('title', 'The coordinator')} {info.get('version', '')}: "
        + _linked(str(info.get("description", ""))),
        "",
        "Every route needs the coordinator's token (`Authorization: Bearer <token>`, see",
        "[security](../security.md)). The machine-readable description is",
        "[openapi.json](../openapi.json); the live state is pushed over the",
        "[stream](stream-api.md).",
        "",
        "## Routes",
        "",
    ]
    for path, methods in spec.get("paths", {}).items():
        for method, operation in methods.items():
            lines += _operation(path, method, operation)
    lines += ["## Bodies", ""]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        lines += _definition(name, schema)
    return "\n".join(lines)


# --- the stream ------------------------------------------------------------------------------


def stream_page(schema_path: Path = DOCS / "stream-schema.json") -> str:
    """The WebSocket stream's messages, from their JSON Schema.

    Example:
        >>> page = stream_page()
        >>> "### Subscribe" in page
        True
    """
    schema: dict[str, Any] = json.loads(schema_path.read_text(encoding="utf-8"))
    lines = [
        "# Stream API reference",
        "",
        GENERATED,
        "",
        _linked(str(schema.get("description", ""))),
        "",
        "How to connect, the query parameters, close codes and a worked client are in",
        "[the live stream](../stream.md); the machine-readable schema is",
        "[stream-schema.json](../stream-schema.json).",
        "",
        f"A message is one of: {_type_of(schema)}.",
        "",
        "## Messages and their parts",
        "",
    ]
    for name, definition in schema.get("$defs", {}).items():
        lines += _definition(name, definition)
    return "\n".join(lines)


PAGES: dict[str, Callable[[], str]] = {
    "reference/cli.md": cli_page,
    "reference/http-api.md": http_page,
    "reference/stream-api.md": stream_page,
}
"""Generated page (path under docs/) → the function that writes it."""


def pages() -> dict[str, str]:
    """Every generated page's text by its path under docs/.

    Example:
        >>> sorted(pages())[0]
        'reference/cli.md'
    """
    return {path: write() for path, write in PAGES.items()}


if __name__ == "__main__":
    chosen: dict[str, Callable[[], str]] = {"cli": cli_page, "http": http_page, "stream": stream_page}
    sys.stdout.write(chosen[sys.argv[1] if len(sys.argv) > 1 else "cli"]() + "\n")
