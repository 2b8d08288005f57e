"""``doradus graph``: Mermaid text, a self-contained HTML page, and that page rendered in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import webbrowser
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.cli.conftest import Control

from doradus._dataflow.diagram import mermaid_text
from doradus._dataflow.model import Dataflow, InputSpec, NodeSource, NodeSpec
from doradus.cli._main import cli

DATAFLOW = """
    nodes:
      - id: camera
        path: dynamic
        inputs:
          tick: dora/timer/millis/20
        outputs: [image]
      - id: runtime
        operators:
          - id: detect
            python: detect.py
            inputs:
              image: camera/image
            outputs: [boxes]
      - id: plot
        path: dynamic
        inputs:
          boxes: runtime/detect/boxes
          image: camera/image
          slow: dora/timer/hz/2
          log: dora/logs/info/camera
    """

EXPECTED = """\
flowchart TB
    n_camera["camera<br/>dynamic"]
    subgraph n_runtime["runtime (operators)"]
        direction TB
        n_runtime__detect["detect<br/>operator"]
    end
    n_plot["plot<br/>dynamic"]
    t_millis_20("timer 20 ms")
    t_hz_2("timer 2 Hz")
    dora_logs[("logs")]
    t_millis_20 -- "tick" --> n_camera
    n_camera -- "image → image" --> n_runtime__detect
    n_runtime__detect -- "boxes → boxes" --> n_plot
    n_camera -- "image → image" --> n_plot
    t_hz_2 -- "slow" --> n_plot
    dora_logs -. "info/camera → log" .-> n_plot
    classDef timer font-size:12px,stroke-dasharray:3 3
    class t_millis_20,t_hz_2 timer
    classDef logs font-size:12px
    class dora_logs logs
"""

NODE_IDS = ("camera", "runtime", "detect", "plot")


def write_dataflow(control: Control) -> Path:
    control.write("detect.py", "def run(): ...\n")
    return control.write("dataflow.yml", DATAFLOW)


def test_mermaid_text_is_the_expected_drawing(control: Control) -> None:
    path = write_dataflow(control)
    result = control("graph", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED
    assert control("graph", str(path), "--mermaid").stdout == EXPECTED


def test_labels_are_escaped_for_mermaid() -> None:
    output = 'out "x" <y> #1 | `z` & end'
    nodes = (
        NodeSpec("a.b-c", "python", outputs=(output,)),
        NodeSpec("end", "executable", inputs={'in "q"': InputSpec('in "q"', NodeSource("a.b-c", output))}),
    )
    text = mermaid_text(Dataflow(Path("df.yml"), nodes))
    assert text.splitlines()[1:] == [
        '    n_a_b_c["a.b-c<br/>python"]',
        '    n_end["end<br/>executable"]',
        '    n_a_b_c -- "out #quot;x#quot; #lt;y#gt; #35;1 #124; #96;z#96; #amp; end'
        ' → in #quot;q#quot;" --> n_end',
    ]


def test_mermaid_ids_never_collide() -> None:
    nodes = (NodeSpec("a.b", "dynamic"), NodeSpec("a_b", "dynamic"), NodeSpec("a-b", "dynamic"))
    text = mermaid_text(Dataflow(Path("df.yml"), nodes))
    assert re.findall(r"^    (\w+)\[", text, re.MULTILINE) == ["n_a_b", "n_a_b_2", "n_a_b_3"]


def test_bad_dataflow_exits_2_with_file_line_column(control: Control) -> None:
    path = control.write("dataflow.yml", "nodes:\n  - id: a\n    path: dynamic\n    inputs: {x: ghost/out}\n")
    result = control("graph", str(path), "--html", str(control.folder / "out.html"))
    assert result.returncode == 2
    assert f"{path}:4:" in result.stderr
    assert "unknown node `ghost`" in result.stderr
    assert result.stdout == ""
    assert not (control.folder / "out.html").exists()


def test_html_page_is_self_contained(control: Control) -> None:
    path = write_dataflow(control)
    out = control.folder / "graph.html"
    result = control("graph", str(path), "--html", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    page = out.read_text(encoding="utf-8")
    # The inlined library holds URLs in strings and comments; only the markup must fetch nothing.
    markup = re.sub(r"<script>.*?</script>", "<script></script>", page, flags=re.DOTALL)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link\b", markup, re.IGNORECASE)
    assert not re.search(r"https?://", markup)
    assert "default-src 'none'" in markup
    assert 'mermaid.initialize({startOnLoad: true, securityLevel: "strict"})' in page
    assert len(page) > 1_000_000  # the library itself, not a reference to it


def test_open_writes_and_opens_the_page(
    control: Control, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_dataflow(control)
    opened: list[str] = []

    def fake_open(url: str, *args: object, **kwargs: object) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    out = tmp_path / "g.html"
    result = CliRunner().invoke(cli, ["graph", str(path), "--html", str(out), "--open"])
    assert result.exit_code == 0, result.output
    assert opened == [out.resolve().as_uri()]
    assert str(out.resolve()) in result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_open_without_html_writes_to_the_temporary_folder(
    control: Control, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_dataflow(control)
    monkeypatch.setattr(webbrowser, "open", lambda url, *args, **kwargs: True)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    result = CliRunner().invoke(cli, ["graph", str(path), "--open"])
    assert result.exit_code == 0, result.output
    page = tmp_path / "doradus-graph-project.html"
    assert page.is_file()
    assert str(page.resolve()) in result.output
    assert "flowchart TB" not in result.output  # the page only; --mermaid prints the text too


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    reason = "headless Chromium is not installed (Debian: `make system-deps` installs `chromium`)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def test_html_page_renders_every_node_in_headless_chromium(control: Control, tmp_path: Path) -> None:
    chromium = find_chromium()
    path = write_dataflow(control)
    out = control.folder / "graph.html"
    assert control("graph", str(path), "--html", str(out)).returncode == 0
    command = [
        chromium,
        *("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"),
        *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        out.as_uri(),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The inlined library's source holds `<svg` strings of its own: look outside the scripts.
    dom = re.sub(r"<script\b.*?</script>", "", proc.stdout, flags=re.DOTALL)
    found = re.search(r"<svg\b.*?</svg>", dom, re.DOTALL)
    assert found, f"no <svg> in the rendered page: {dom[:2000]}"
    svg = re.sub(r"<style>.*?</style>", "", found.group(0), flags=re.DOTALL)
    assert "Syntax error" not in svg
    texts = {text.strip() for text in re.findall(r">([^<>]+)<", svg)}
    for node_id in NODE_IDS:
        assert node_id in texts or f"{node_id} (operators)" in texts, (node_id, sorted(texts))
    assert {"timer 20 ms", "timer 2 Hz", "logs", "image → image"} <= texts
