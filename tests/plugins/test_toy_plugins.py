"""A backend and a codec from another package: registered by entry points, used end to end.

``installed/`` is what ``pip install toy_plugins`` would leave in site-packages: the
``toy_plugins`` package and its ``dist-info`` folder, whose ``entry_points.txt`` registers
``ToyBackend`` (``doradus.backends``) and ``ToyCodec`` (``doradus.codecs``). The real
``doradus check`` and ``doradus run`` get it on ``PYTHONPATH``; no module of Doradus names
the toy plug-ins, and their hooks say everything that differs from a built-in one.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from tests.conftest import DORADUS, assert_nothing_left, shm_entries, write_files

from doradus.codecs import FormatSpec, get_codec
from doradus.testing import CollectingReceiver, check_backend, check_codec

INSTALLED = Path(__file__).parent / "installed"

FLOW = """
    communication:
      local: toy
      toy: {flavour: salted, connect_retries: 100}
    nodes:
      - id: source
        path: source.py
        outputs: [out]
        data_format: toy
      - id: sink
        path: sink.py
        inputs:
          x: {source: source/out, queue_size: 1000}
"""

NODES = {
    "source.py": """
        from doradus import Node
        node = Node()
        for seq in range(50):
            node.send_output("out", {"seq": seq, "words": ["toy"] * (seq % 3)}, {"seq": seq})
    """,
    "sink.py": """
        import json
        from doradus import Input, Node
        got = []
        for event in Node():
            if isinstance(event, Input):
                got.append({"format": event.data_format, "value": event.value, "seq": event.metadata["seq"]})
        json.dump(got, open("sink.json", "w"))
    """,
}


def _env(*, plugins: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    if plugins:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(INSTALLED), env.get("PYTHONPATH")) if p)
    return env


def _check(tmp_path: Path, flow: str, *, plugins: bool = True) -> subprocess.CompletedProcess[str]:
    (tmp_path / "dataflow.yml").write_text(textwrap.dedent(flow).lstrip())
    write_files(tmp_path, NODES)
    return subprocess.run(
        [*DORADUS, "check", str(tmp_path / "dataflow.yml"), "--no-color"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(plugins=plugins),
        check=False,
    )


def test_a_dataflow_runs_on_the_toy_backend_and_codec(tmp_path: Path) -> None:
    write_files(tmp_path, {"dataflow.yml": FLOW, **NODES})
    before = shm_entries()
    ran = subprocess.run(
        [*DORADUS, "run", str(tmp_path / "dataflow.yml"), "--no-color"],
        capture_output=True,
        text=True,
        timeout=90,
        env=_env(),
        cwd=tmp_path.parent,
        check=False,
    )
    assert_nothing_left(before, tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    got = json.loads((tmp_path / "sink.json").read_text())
    sent = [{"seq": seq, "words": ["toy"] * (seq % 3)} for seq in range(50)]
    assert got == [{"format": "toy", "value": value, "seq": value["seq"]} for value in sent]
    (run_dir,) = (tmp_path / "out").iterdir()
    edges = {e["target"]: e for e in json.loads((run_dir / "edges.json").read_text())}
    assert edges["sink/x"]["backend"] == "toy"
    assert edges["sink/x"]["messages"] == 50


def test_check_accepts_the_toy_names_and_options(tmp_path: Path) -> None:
    done = _check(tmp_path, FLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_rejects_an_option_the_toy_backend_does_not_declare(tmp_path: Path) -> None:
    done = _check(tmp_path, FLOW.replace("flavour: salted", "colour: red"))
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "`toy` has no option `colour`" in output
    assert "connect, connect_retries, flavour, listen, retry_interval" in output


def test_check_rejects_a_value_the_toy_backend_does_not_allow(tmp_path: Path) -> None:
    done = _check(tmp_path, FLOW.replace("flavour: salted", "flavour: sweet"))
    assert done.returncode != 0
    assert "`toy` option `flavour` must be one of `plain`, `salted`" in done.stdout + done.stderr


def test_without_the_package_the_toy_names_are_unknown(tmp_path: Path) -> None:
    done = _check(tmp_path, FLOW, plugins=False)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "unknown backend `toy`" in output
    assert "`data_format` must be one of" in output


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(INSTALLED))
    import toy_plugins

    return toy_plugins


def test_the_registries_read_the_toy_hooks(toy: object) -> None:
    from doradus.backends import backend_class, backend_names, get_backend
    from doradus.codecs import codec_class, codec_names, tag_name

    assert "toy" in backend_names()
    assert "toy" in codec_names()
    backend = backend_class("toy")
    assert backend is get_backend("toy")
    assert (backend.uses_socket_pairs, backend.machine_router, backend.reports_sender_end) == (False,) * 3
    assert backend.option_choices["flavour"] == ("plain", "salted")
    out, inbound = backend.link_options({"prefix": "p/"}, "127.0.0.1", 7000)
    assert out == {"prefix": "p/", "connect": "127.0.0.1:7000", "toy_end": "out"}
    assert inbound == {"prefix": "p/", "listen": "127.0.0.1:7000", "toy_end": "in"}
    codec = codec_class("toy")
    assert (codec.tag, codec.needs_schema, codec.type_kind) == (5, False, None)
    assert tag_name(5) == "toy"
    assert get_codec(FormatSpec("toy")).decode(get_codec(FormatSpec("toy")).encode([1])) == [1]


def test_the_toy_plugins_pass_the_conformance_kits(toy: object) -> None:
    from doradus.backends import LinkSpec, get_backend

    check_codec(get_codec(FormatSpec("toy")), [{"a": [1, 2.5, None]}, [], "text", 0])
    toy_backend = get_backend("toy")
    common = {"flavour": "plain", "prefix": "doradus/kit/"}

    def pair(receiver: CollectingReceiver) -> tuple[object, object]:
        with_port = toy_backend.link_options(common, "127.0.0.1", 0)
        inbound = toy_backend("b", receiver)
        inbound.open([LinkSpec("a", "in", routes={"out": ["in"]}, options=with_port[1])], [])
        inbound.start()
        host, port = inbound.address
        out, _in = toy_backend.link_options(common, host, port)
        sender = toy_backend("a", CollectingReceiver())
        sender.open([LinkSpec("b", "out", ("out",), options=out)], [])
        sender.start()
        return sender, inbound

    check_backend(pair, messages=1000)
