"""mkdocs hooks: generated reference pages, and links to repository files outside docs/.

- The CLI, HTTP API, stream API and JSON Schema pages are written at build time by
  tools/docs_reference.py, from the click command tree, docs/openapi.json and
  docs/stream-schema.json: a page generated when the site is built cannot drift from the code.
- Pages link to files of the repository outside docs/ (`../examples/x/dataflow.yml`,
  `../src/doradus/...`) with relative paths, which is right on GitHub. The site holds only
  docs/, so such a link to a file is rewritten to a copy of that file published under
  `repository/` in the site, and a link to a folder becomes its path in code. A link to a path
  that does not exist is left alone, so `--strict` still fails on it.
- The Mermaid the package ships (`src/doradus/_assets/mermaid.min.js`) is published with the
  site and loaded by every page, so diagrams render offline, without the CDN the theme would
  otherwise load it from.
"""

from __future__ import annotations

import importlib.util
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
MERMAID = ROOT / "src" / "doradus" / "_assets" / "mermaid.min.js"
"""The Mermaid the package ships (`doradus graph --html` uses it): published with the site."""
MERMAID_URI = "assets/javascripts/mermaid.min.js"
PUBLISHED = "repository"
"""Folder of the site holding copies of the repository files that pages link to."""

_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")


def _generator() -> Any:
    """tools/docs_reference.py, loaded by path (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "tools" / "docs_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_reference"] = module
    spec.loader.exec_module(module)
    return module


def on_config(config: Any) -> Any:
    """Load the local mermaid when there is one: the theme then uses it instead of its CDN."""
    if MERMAID.is_file() and MERMAID_URI not in [str(script) for script in config["extra_javascript"]]:
        config["extra_javascript"].append(MERMAID_URI)
    return config


def on_files(files: Files, config: Any) -> Files:
    """Add the generated reference pages and the repository files pages link to."""
    for path, text in _generator().pages().items():
        if files.get_file_from_path(path) is not None:
            raise PluginError(
                f"docs/{path} is written when the site builds: remove it (edit tools/docs_reference.py)"
            )
        files.append(File.generated(config, path, content=text))
    if MERMAID.is_file():
        files.append(File.generated(config, MERMAID_URI, abs_src_path=str(MERMAID)))
    docs = Path(config["docs_dir"]).resolve()
    for page in files.documentation_pages():
        if page.abs_src_path is None:
            continue
        for relative in _outside_files(Path(page.abs_src_path), docs):
            uri = f"{PUBLISHED}/{relative}"
            if files.get_file_from_path(uri) is None:
                files.append(File.generated(config, uri, abs_src_path=str(ROOT / relative)))
    return files


def _outside(target: str, page: Path, docs: Path) -> Path | None:
    """The repository path a relative link points to when it leaves docs/ and exists."""
    if "://" in target or target.startswith(("#", "/", "mailto:")):
        return None
    path = target.split("#", 1)[0]
    if not path:
        return None
    resolved = (page.parent / path).resolve()
    if resolved.is_relative_to(docs) or not resolved.is_relative_to(ROOT) or not resolved.exists():
        return None
    return resolved.relative_to(ROOT)


def _outside_files(page: Path, docs: Path) -> set[str]:
    """Repository files (not folders) outside docs/ that a page links to."""
    found = set()
    for match in _LINK.finditer(page.read_text(encoding="utf-8")):
        relative = _outside(match["target"], page, docs)
        if relative is not None and (ROOT / relative).is_file():
            found.add(relative.as_posix())
    return found


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Point links that leave docs/ at the published copy (files) or show the path (folders)."""
    if not page.file.abs_src_path:
        return markdown
    docs = Path(config["docs_dir"]).resolve()
    source = Path(page.file.abs_src_path)

    def rewrite(match: re.Match[str]) -> str:
        relative = _outside(match["target"], source, docs)
        if relative is None:
            return match[0]
        if not (ROOT / relative).is_file():
            folder = relative.as_posix()
            named = folder in match["text"]
            return match["text"] if named else f"{match['text']} (`{folder}/` in the repository)"
        anchor = match["target"].partition("#")[2]
        here = posixpath.dirname(page.file.src_uri)
        target = posixpath.relpath(f"{PUBLISHED}/{relative.as_posix()}", here or ".")
        return f"[{match['text']}]({target}{'#' + anchor if anchor else ''})"

    return _LINK.sub(rewrite, markdown)
