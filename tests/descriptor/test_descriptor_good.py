"""Every file in ``good/`` loads into the expected model values."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from doradus._dataflow.loader import check_dataflow, load_dataflow
from doradus._dataflow.model import (
    Dataflow,
    InputSpec,
    LogSource,
    NodeSource,
    TimerSource,
)

GOOD = Path(__file__).parent / "good"
NODES = (Path(__file__).parent / "nodes").resolve()


def load(name: str, extra_env: dict[str, str] | None = None) -> Dataflow:
    return load_dataflow(GOOD / name, extra_env=extra_env)


@pytest.mark.parametrize("file", sorted(GOOD.glob("*.yml")), ids=lambda file: file.stem)
def test_every_good_file_loads_without_errors(file: Path) -> None:
    dataflow, problems = check_dataflow(file, extra_env={"DORADUS_TEST_HOME": "/h"})
    assert dataflow is not None, "\n".join(map(str, problems))
    assert all(problem.severity == "warning" for problem in problems)
    assert dataflow.warnings == tuple(problems)


def test_minimal() -> None:
    dataflow = load("minimal.yml")
    assert dataflow.path == GOOD.absolute() / "minimal.yml"
    assert dataflow.working_dir == GOOD.absolute()
    assert dataflow.health_check_interval == 5.0
    assert dataflow.env == {}
    assert dataflow.communication == {}
    assert dataflow.warnings == ()
    (camera,) = dataflow.nodes
    assert (camera.id, camera.kind, camera.path, camera.executable) == ("camera", "dynamic", "dynamic", None)
    assert camera.outputs == ("image",)
    assert camera.inputs == {}
    assert camera.location is not None
    assert (camera.location.line, camera.location.column) == (2, 5)
    assert camera.raw == {"id": "camera", "path": "dynamic", "outputs": ["image"]}
    assert dataflow.raw == {"nodes": [camera.raw]}


def test_full_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DORADUS_TEST_HOME", "/home/robot")
    camera = load("full_node.yml").node("camera")
    assert camera.kind == "python"
    assert camera.path == "../nodes/noop.py"
    assert camera.executable == str(NODES / "noop.py")
    assert (camera.name, camera.description) == ("Front camera", "Grabs frames.")
    assert camera.args == ("--device", "/dev/video0", "--label", "front camera")
    assert camera.build == ("pip install opencv-python", "echo built")
    assert camera.env == {
        "SHARED": "from-global",
        "OVERRIDDEN": "node",
        "RATE": "30",
        "ENABLED": "true",
        "DISABLED": "false",
        "COUNT": "3",
        "GAIN": "1.5",
        "HOME_DIR": "/home/robot",
        "BRACED": "/home/robot/cache",
    }
    assert camera.inputs == {
        "tick": InputSpec("tick", TimerSource("dora/timer/millis/33", 33_000_000)),
        "config": InputSpec("config", NodeSource("settings", "config"), 1, "backpressure", 2.5),
    }
    assert camera.outputs == ("image", "log")
    assert camera.send_stdout_as == "log"
    assert (camera.restart_policy, camera.max_restarts) == ("on-failure", 3)
    assert camera.restart_delay == pytest.approx(0.5)
    assert camera.max_restart_delay == 60.0
    assert camera.restart_window == 30.0
    assert camera.health_check_timeout == 2.0
    assert camera.finish_grace_secs == 1.5
    assert camera.startup_timeout == 10.0
    assert camera.shared_memory_pool_size == 256_000_000
    assert camera.cpu_affinity == (0, 2)
    assert camera.machine == "robot"
    assert camera.data_format == "capnp"
    assert camera.communication == "zenoh"
    assert camera.raw["deploy"]["working_dir"] == "/opt/camera"


def test_defaults_of_an_unconfigured_node() -> None:
    settings = load("full_node.yml").node("settings")
    assert settings.env == {"SHARED": "from-global", "OVERRIDDEN": "global", "RATE": "30"}
    assert (settings.restart_policy, settings.max_restarts, settings.restart_delay) == ("never", 0, None)
    assert (settings.shared_memory_pool_size, settings.cpu_affinity, settings.machine) == (None, (), None)
    assert (settings.data_format, settings.communication, settings.send_stdout_as) == (None, None, None)


def test_extra_env_wins_over_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DORADUS_TEST_HOME", "/from-process")
    camera = load("full_node.yml", extra_env={"DORADUS_TEST_HOME": "/from-cli"}).node("camera")
    assert camera.env["HOME_DIR"] == "/from-cli"


def test_unset_variable_is_kept_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DORADUS_TEST_HOME", raising=False)
    dataflow = load("full_node.yml")
    assert dataflow.node("camera").env["BRACED"] == "${DORADUS_TEST_HOME}/cache"
    unset = [w for w in dataflow.warnings if "DORADUS_TEST_HOME" in w.message]
    assert [(w.location.line, w.location.column) for w in unset] == [(22, 17), (23, 15)]


def test_sources() -> None:
    sink = load("sources.yml").node("sink")
    sources = {input_id: spec.source for input_id, spec in sink.inputs.items()}
    assert sources == {
        "secs": TimerSource("dora/timer/secs/2", 2_000_000_000),
        "millis": TimerSource("dora/timer/millis/20", 20_000_000),
        "micros": TimerSource("dora/timer/micros/500", 500_000),
        "nanos": TimerSource("dora/timer/nanos/1000", 1000),
        "hz": TimerSource("dora/timer/hz/50", 20_000_000),
        "slow": TimerSource("dora/timer/hz/0.5", 2_000_000_000),
        "all_logs": LogSource("dora/logs", None, None),
        "errors": LogSource("dora/logs/error", "error", None),
        "camera_debug": LogSource("dora/logs/debug/camera", "debug", "camera"),
        "image": NodeSource("camera", "image"),
        "depth": NodeSource("camera", "depth/raw"),
        "self_loop": NodeSource("sink", "feedback"),
    }
    assert all(spec.queue_size == 10 and spec.queue_policy == "drop_oldest" for spec in sink.inputs.values())
    assert all(spec.input_timeout is None for spec in sink.inputs.values())


def test_single_operator() -> None:
    single = load("operators.yml").node("single")
    assert (single.kind, single.path, single.executable) == ("operator", None, None)
    (operator,) = single.operators
    assert operator.id is None
    assert operator.python == NODES / "op.py"
    assert (operator.name, operator.description) == ("Single", "One operator.")
    assert operator.outputs == ("result", "stdout")
    assert operator.send_stdout_as == "stdout"
    assert operator.inputs == {"tick": InputSpec("tick", TimerSource("dora/timer/millis/100", 100_000_000))}
    assert single.inputs == operator.inputs
    assert single.outputs == ("result", "stdout")
    assert single.send_stdout_as == "stdout"
    assert single.build == ("pip install numpy", "echo op")


def test_operator_list_prefixes_ids() -> None:
    dataflow = load("operators.yml")
    runtime = dataflow.node("runtime")
    assert runtime.kind == "operator"
    assert [op.id for op in runtime.operators] == ["detect", "track"]
    assert all(op.python == NODES / "op.py" for op in runtime.operators)
    assert runtime.operators[0].inputs == {"image": InputSpec("image", NodeSource("single", "result"))}
    assert runtime.outputs == ("detect/boxes", "track/tracks")
    assert runtime.inputs == {
        "detect/image": InputSpec("detect/image", NodeSource("single", "result")),
        "track/boxes": InputSpec("track/boxes", NodeSource("runtime", "detect/boxes")),
    }
    assert dataflow.node("viewer").inputs["tracks"].source == NodeSource("runtime", "track/tracks")


def test_dora_0x_forms_load_with_warnings() -> None:
    dataflow = load("legacy_0x.yml")
    assert dataflow.communication == {
        "_unstable_local": "UnixDomain",
        "_unstable_remote": {"Zenoh": {"prefix": "/dora"}},
        "local": "shm",  # dora 0.x UnixDomain and Shmem are local links: shm
        "remote": "zenoh",
    }
    camera = dataflow.node("camera")
    assert camera.kind == "python"
    assert camera.executable == str(NODES / "noop.py")
    assert camera.path == "../nodes/noop.py"
    assert camera.args == ("--fps", "30")
    assert camera.env == {"FROM_NODE": "node", "FROM_CUSTOM": "custom"}
    assert camera.build == ("echo building",)
    assert camera.outputs == ("image",)
    assert camera.inputs["tick"].source == TimerSource("dora/timer/millis/50", 50_000_000)
    assert camera.machine == "base"
    assert dataflow.node("viewer").machine == "display"
    warned = {(w.location.line, w.location.column): w.message for w in dataflow.warnings}
    assert set(warned) == {(3, 3), (4, 3), (7, 1), (13, 5), (24, 5), (26, 5)}
    assert "dora 0.x" in warned[(13, 5)]
    assert all(w.severity == "warning" for w in dataflow.warnings)


def test_executables() -> None:
    dataflow = load("executables.yml")
    on_path = dataflow.node("on_path")
    assert on_path.kind == "executable"
    assert on_path.executable is not None
    assert os.path.samefile(on_path.executable, os.path.join(os.path.dirname(sys.executable), "python"))
    assert on_path.args == ("-c", "print('hi')")
    script = dataflow.node("script")
    assert (script.kind, script.executable) == ("executable", str(NODES / "run.sh"))
    shell = dataflow.node("shell")
    assert (shell.kind, shell.executable, shell.args) == ("shell", None, ("echo", "hello"))
    built = dataflow.node("built_later")
    assert (built.kind, built.executable) == (
        "executable",
        str(GOOD.absolute() / "target/release/built_later"),
    )
    console = dataflow.node("console_script_later")
    assert (console.kind, console.executable) == ("executable", "doradus-test-console-script-not-installed")
    after_build = [w for w in dataflow.warnings if "checked after the build" in w.message]
    assert [(w.location.line, w.location.column) for w in after_build] == [(11, 11), (14, 11)]


def test_top_level_keys() -> None:
    dataflow = load("top_level.yml")
    assert dataflow.health_check_interval == 2.5
    assert dataflow.default_data_format == "flatbuffers"
    assert dataflow.communication == {"local": "shm", "remote": "zenoh", "zenoh": {"mode": "peer"}}
    assert dataflow.raw["exit_when_nodes_finish"] is True
    assert dataflow.raw["debug"] == {"enable_debug_inspection": True}
    assert dataflow.raw["type_rules"] == {"camera/image": "uint8"}
    camera, viewer = dataflow.nodes
    assert (camera.data_format, camera.machine) == ("flatbuffers", "main")
    assert (viewer.data_format, viewer.machine) == ("avro", "laptop")
    assert dataflow.warnings == ()


def test_anchors_and_merge_keys() -> None:
    a, b = load("anchors.yml").nodes
    assert a.env == {"LEVEL": "debug", "RATE": "10"}
    assert b.env == {"LEVEL": "debug", "RATE": "20"}
    assert b.raw["deploy"] == {"machine": "robot", "working_dir": "/tmp"}
    assert (a.machine, b.machine) == ("robot", "robot")
    assert a.outputs == b.outputs == ("value",)
