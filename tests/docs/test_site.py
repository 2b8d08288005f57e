"""The documentation site builds with `mkdocs build --strict`, and what it holds is whole.

One strict build (a few seconds) into a temporary folder serves every test here: strict fails
on a broken link, a missing anchor, a nav entry without its page or a reference mkdocstrings
cannot resolve; the tests then check what strict does not: every public name has its entry in
the API reference, docstring examples render as code, and every relative link of every built
page (generated pages and published repository files included) lands on a file of the site.
"""

from __future__ import annotations

import html
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_MODULES = ("doradus", "doradus.backends", "doradus.codecs", "doradus.testing")
API_PAGES = {
    "doradus": "reference/api/doradus",
    "doradus.backends": "reference/api/backends",
    "doradus.codecs": "reference/api/codecs",
    "doradus.testing": "reference/api/testing",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built strictly from the working tree into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "WARNING" not in done.stderr, done.stderr[-4000:]
    return out


def test_the_strict_build_writes_every_section(site: Path) -> None:
    for page in (
        "index.html",
        "getting-started/index.html",
        "concepts/architecture/index.html",
        "reference/cli/index.html",
        "reference/http-api/index.html",
        "reference/stream-api/index.html",
        "reference/json-schema/index.html",
        *(f"{path}/index.html" for path in API_PAGES.values()),
    ):
        assert (site / page).is_file(), page
    assert "doradus run" in (site / "reference/cli/index.html").read_text(encoding="utf-8")


def test_every_public_name_has_its_entry_in_the_api_reference(site: Path) -> None:
    missing = []
    for module_name in PUBLIC_MODULES:
        page = (site / API_PAGES[module_name] / "index.html").read_text(encoding="utf-8")
        for name in importlib.import_module(module_name).__all__:
            if name != "__version__" and f'id="{module_name}.{name}"' not in page:
                missing.append(f"{module_name}.{name}")

    assert missing == [], f"not in docs/reference/api/*.md: {missing}"


def test_docstring_examples_render_as_code(site: Path) -> None:
    pages = {path: (site / path / "index.html").read_text(encoding="utf-8") for path in API_PAGES.values()}

    for path, page in pages.items():
        # `>>>` outside a code block would be a Markdown quote; `Example::` an unparsed section.
        assert "<blockquote>" not in page, path
        assert "Example::" not in page, path
        assert page.count('<div class="highlight">') >= 3, path
    assert '<span class="gp">&gt;&gt;&gt; </span>' in pages["reference/api/codecs"]


_HREF = re.compile(r'(?:href|src)="([^"]+)"')


def _broken_links(site: Path, page: Path) -> list[str]:
    broken = []
    for raw in _HREF.findall(page.read_text(encoding="utf-8")):
        target = urlsplit(html.unescape(raw))
        if target.scheme or target.netloc or not target.path:
            continue
        resolved = (page.parent / unquote(target.path)).resolve()
        if resolved.is_dir():
            resolved = resolved / "index.html"
        if not resolved.is_file() or not resolved.is_relative_to(site.resolve()):
            broken.append(raw)
    return broken


def test_every_relative_link_of_every_page_lands_on_a_file_of_the_site(site: Path) -> None:
    broken = {
        str(page.relative_to(site)): found
        for page in site.rglob("*.html")
        # The 404 page is served at any depth, so its links are absolute by design.
        if page.name != "404.html" and (found := _broken_links(site, page))
    }

    assert broken == {}


def test_files_outside_docs_that_pages_link_to_are_published(site: Path) -> None:
    published = site / "repository"
    linked = {
        target
        for page in site.rglob("*.html")
        for target in _HREF.findall(page.read_text(encoding="utf-8"))
        if "repository/" in target and "://" not in target
    }

    # Each is a copy of the repository file it names (the link checker above proves it exists).
    for target in linked:
        relative = target.split("repository/", 1)[1].split("#", 1)[0]
        assert (published / relative).read_bytes() == (ROOT / relative).read_bytes(), relative


def test_the_home_page_code_compiles_and_imports_what_exists() -> None:
    import doradus

    text = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)

    assert blocks
    for block in blocks:
        compile(block, "docs/index.md", "exec")
        for names in re.findall(r"^from doradus import (.+)$", block, flags=re.MULTILINE):
            assert {n.strip() for n in names.split(",")} <= set(doradus.__all__)


def test_mermaid_fences_become_diagrams_loaded_from_the_site(site: Path) -> None:
    page = (site / "concepts" / "architecture" / "index.html").read_text(encoding="utf-8")
    shipped = ROOT / "src" / "doradus" / "_assets" / "mermaid.min.js"

    assert '<pre class="mermaid"><code>' in page
    # The package's own copy is published: pages load it, offline, not the theme's CDN.
    assert "assets/javascripts/mermaid.min.js" in page
    published = site / "assets" / "javascripts" / "mermaid.min.js"
    assert published.read_bytes() == shipped.read_bytes()
