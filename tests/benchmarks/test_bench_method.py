"""The benchmark's rules hold: faster dora-rs, complete samples, whole-tree CPU, publishing.

No timing assertions. Each test checks one rule of `benchmarks/` with real processes and a
real git repository where a rule is about them: the ratio is taken against the faster dora-rs
configuration and the better IPC anchor; a run that lost a latency sample fails and says so;
`os.wait4` counts a reaped child's CPU time and a child that escaped reaping makes the tree's
CPU incomplete; figures from a dirty tree, or from code that changed since, are not published.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))

import frameworks  # noqa: E402
import provenance  # noqa: E402
import rows  # noqa: E402
import scenarios  # noqa: E402


def _latency(p50: float) -> dict[str, Any]:
    return {"runs": 1, "failed": 0, "errors": [], "metrics": {"8": {"p50_us": p50, "p99_us": 2 * p50}}}


def test_targets_use_the_faster_dora_rs_and_the_better_anchor() -> None:
    summary = {
        "latency-payload": {
            "doradus": _latency(100.0),
            "dora-tuned": _latency(400.0),
            "dora": _latency(250.0),  # as installed is faster here
            "iceoryx2": _latency(40.0),
            "pyzmq": _latency(80.0),
        }
    }
    r = rows.row(summary, "latency-payload", "8 B p50", "us", ("8", "p50_us"), ("max", 0.3))
    assert r["faster_dora"] == "dora"
    assert r["ratio_vs_faster_dora"] == pytest.approx(100 / 250)
    assert r["ratio_vs_tuned"] == pytest.approx(100 / 400)
    assert r["pass"] is False  # 0.25x of tuned, but 0.4x of the faster configuration
    assert r["floor"] == "iceoryx2"
    assert r["ratio_vs_floor"] == pytest.approx(100 / 40)


def test_higher_is_better_for_throughput() -> None:
    def tp(v: float) -> dict[str, Any]:
        return {"runs": 1, "failed": 0, "errors": [], "metrics": {"received_per_s": v}}

    summary = {"throughput": {"doradus": tp(90_000), "dora-tuned": tp(30_000), "dora": tp(20_000)}}
    r = rows.row(summary, "throughput", "8 B", "per_s", ("received_per_s",), ("min", 4.0))
    assert r["faster_dora"] == "dora-tuned"
    assert r["ratio_vs_faster_dora"] == pytest.approx(3.0)
    assert r["pass"] is False
    assert r["floor"] is None  # no anchor measured: no floor ratio
    assert r["measured"]["iceoryx2"] is False


def test_a_lost_latency_sample_fails_the_run_and_says_which() -> None:
    sender = {"sent": 22, "ack_timeouts": 0, "warmup": 1}
    complete = {"received": 22, "latency_ns": {"8": [1] * 10, "1024": [1] * 10}}
    scenarios._check_samples(10, (8, 1024), sender, {"receiver": complete})

    lost = {"received": 21, "latency_ns": {"8": [1] * 10, "1024": [1] * 9}}
    with pytest.raises(scenarios.RunFailed, match=r"9 of 10 latency samples at 1 KiB") as err:
        scenarios._check_samples(10, (8, 1024), sender, {"receiver": lost})
    assert "received 21 of 22" in str(err.value)
    with pytest.raises(scenarios.RunFailed, match="acknowledgement"):
        scenarios._check_samples(10, (8, 1024), {**sender, "ack_timeouts": 1}, {"receiver": complete})


# A stand-in for `doradus run`: starts a child that burns CPU until its own CPU clock reaches
# BURN_S, then either reaps it or exits while it still runs (after the harness has seen it).
FAKE_CLI = textwrap.dedent(
    """\
    #!{python}
    import os, subprocess, sys, time
    burn = float(os.environ["BURN_S"])
    linger = 0 if os.environ["REAP"] == "1" else 5
    flag = sys.argv[2] + ".burned"
    child = subprocess.Popen([sys.executable, "-c", '''
    import sys, time
    while time.process_time() < {{burn}}:
        pass
    open({{flag!r}}, "w").close()
    while time.process_time() < {{burn}} + {{linger}}:  # an orphan stops by itself
        pass
    '''.format(burn=burn, flag=flag, linger=linger)])
    if os.environ["REAP"] == "1":
        child.wait()
    else:
        deadline = time.monotonic() + 60
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.6)  # the harness samples every 0.2 s: it has seen the child's CPU time
    """
)


def _fake_run(tmp_path: Path, reap: bool, monkeypatch: pytest.MonkeyPatch) -> frameworks.Outcome:
    cli = tmp_path / "fake-cli"
    cli.write_text(FAKE_CLI.format(python=sys.executable))
    cli.chmod(0o755)
    dataflow = tmp_path / "dataflow.yml"
    dataflow.write_text("nodes: []\n")
    monkeypatch.setenv("BURN_S", "0.3")
    monkeypatch.setenv("REAP", "1" if reap else "0")
    fw = frameworks.Framework("fake", "fake", cli, Path(sys.prefix), None)
    return frameworks.run_dataflow(fw, dataflow, timeout=90)


def test_wait4_counts_the_cpu_of_a_reaped_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = _fake_run(tmp_path, True, monkeypatch)
    assert outcome.returncode == 0, outcome.log_tail
    tree = outcome.tree_cpu
    assert tree is not None
    assert tree.total_s >= 0.3  # the child's own burn is in the parent's wait4 figure
    assert tree.complete


def test_a_child_left_unreaped_makes_the_tree_cpu_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = _fake_run(tmp_path, False, monkeypatch)
    assert outcome.returncode == 0, outcome.log_tail
    assert outcome.leftovers, "the orphan should have been found and killed"
    tree = outcome.tree_cpu
    assert tree is not None
    assert tree.sampled_s >= 0.3
    assert not tree.complete
    with pytest.raises(scenarios.RunFailed, match="not reaped"):
        scenarios._tree_cpu(outcome)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "code.py").write_text("x = 1\n")
    _git(root, "init", "-q")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "one")
    return root


def test_figures_from_a_clean_tree_at_the_same_code_may_be_published(repo: Path) -> None:
    state = provenance.git_state(repo)
    assert state["clean"] is True
    assert len(state["commit"]) == 40
    assert provenance.publish_refusal({"start": state, "end": state}, repo) is None
    assert provenance.start_refusal(True, state) is None


def test_a_dirty_tree_is_never_published(repo: Path) -> None:
    (repo / "src" / "code.py").write_text("x = 2\n")
    dirty = provenance.git_state(repo)
    assert dirty["clean"] is False
    assert dirty["changed"] == ["src/code.py"]
    assert "dirty" in (provenance.start_refusal(True, dirty) or "")
    assert "dirty" in (provenance.publish_refusal({"start": dirty, "end": dirty}, repo) or "")
    assert "full run" in (provenance.start_refusal(False, dirty) or "")


def test_figures_are_not_published_once_the_measured_code_changed(repo: Path) -> None:
    clean = provenance.git_state(repo)
    (repo / "src" / "new.py").write_text("y = 1\n")  # untracked code counts too
    why = provenance.publish_refusal({"start": clean, "end": clean}, repo)
    assert why is not None
    assert "differs" in why


def test_render_refuses_to_publish_figures_recorded_on_a_dirty_tree(tmp_path: Path) -> None:
    doc_file = REPO / "docs" / "performance.md"
    before = doc_file.read_text()
    dirty = {"commit": "0" * 40, "short": "0000000000", "clean": False, "changed": ["src/x.py"]}
    results = tmp_path / "latest.json"
    results.write_text(json.dumps({"meta": {"suite": "full", "git": {"start": dirty, "end": dirty}}}))
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--render", str(results), "--publish"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 2
    assert "refusing to publish" in done.stderr
    assert "dirty" in done.stderr
    assert doc_file.read_text() == before
    assert not results.with_suffix(".md").exists()


def test_every_format_carries_the_sensor_values_as_the_same_typed_float_array() -> None:
    import numpy as np
    import pyarrow as pa

    sys.path.insert(0, str(BENCH / "format_nodes"))
    import formatlib as fl

    schemas = BENCH / "format_schemas"
    arrow = fl.BUILD["arrow"]("sensor", fl.app_data("sensor"), 1)
    assert arrow.type.field("values").type == pa.list_(pa.float32())
    slot = fl.capnp_struct("sensor").schema.fields["values"].proto.slot.type
    assert slot.which() == "list"
    assert slot.list.elementType.which() == "float32"
    assert "values:[float];" in (schemas / "sensor.fbs").read_text()
    avro = json.loads((schemas / "sensor.avsc").read_text())
    assert {"name": "values", "type": {"type": "array", "items": "float"}} in avro["fields"]
    # And each reads back the first value as that float, through the codec a dataflow uses.
    app = fl.app_data("sensor")
    for fmt in fl.FORMATS:
        codec = fl.codec_for(fmt, "sensor")
        value = codec.decode(pa.py_buffer(codec.encode(fl.BUILD[fmt]("sensor", app, 1))))
        assert fl.TOUCH[fmt]("sensor", value) == np.float32(-1.0), fmt
