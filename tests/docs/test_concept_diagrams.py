"""The Mermaid diagrams of the concept pages parse with the bundled Mermaid, in headless Chromium.

A diagram that does not parse shows as "Syntax error" on the built site; this catches it here.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from importlib import resources
from pathlib import Path

from tests.cli.test_graph import find_chromium

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    ROOT / "docs" / "concepts" / f"{name}.md"
    for name in ("message-life", "shared-memory", "backends-guarantees", "codecs")
]
MERMAID = re.compile(r"^```mermaid\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def diagrams() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for index, match in enumerate(MERMAID.finditer(page.read_text(encoding="utf-8"))):
            found.append((f"{page.stem}#{index + 1}", match.group(1)))
    return found


def page(found: list[tuple[str, str]]) -> str:
    library = resources.files("doradus._assets").joinpath("mermaid.min.js").read_text(encoding="utf-8")
    sources = json.dumps([text for _, text in found])
    check = f"""
mermaid.initialize({{startOnLoad: false}});
(async () => {{
  const results = [];
  for (const text of {sources}) {{
    try {{ await mermaid.parse(text); results.push("ok"); }}
    catch (e) {{ results.push("error: " + String(e && e.message || e)); }}
  }}
  const out = document.createElement("pre");
  out.id = "results";
  out.textContent = JSON.stringify(results);
  document.body.appendChild(out);
}})();
"""
    return f"<!doctype html><html><body><script>{library}</script><script>{check}</script></body></html>"


def test_every_concept_page_has_diagrams() -> None:
    names = {name.split("#")[0] for name, _ in diagrams()}
    assert names == {p.stem for p in PAGES}


def test_every_diagram_parses(tmp_path: Path) -> None:
    chromium = find_chromium()
    found = diagrams()
    file = tmp_path / "diagrams.html"
    file.write_text(page(found), encoding="utf-8")
    command = [
        chromium,
        *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
        *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        file.as_uri(),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = re.sub(r"<script\b.*?</script>", "", proc.stdout, flags=re.DOTALL)
    shown = re.search(r'<pre id="results">(.*?)</pre>', dom, re.DOTALL)
    assert shown, f"the check did not run: {dom[:2000]}"
    results = json.loads(html.unescape(shown.group(1)))
    failed = {name: result for (name, _), result in zip(found, results, strict=True) if result != "ok"}
    assert not failed, "\n".join(f"{name}: {result}" for name, result in failed.items())
