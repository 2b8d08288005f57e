"""``doradus version``, ``completion`` and ``doctor`` through the real CLI, and the doctor's checks."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.cli.conftest import DORADUS, Control

from doradus._project import doctor as _doctor

REQUIRED = ["python", "pyarrow", "numpy", "memfd", "seqpacket", "fd passing", "runtime folder", "coordinator"]
OPTIONAL = ["/dev/shm", "redis", "mqtt", "dora-rs"]


def test_version_json_keys(control: Control) -> None:
    ran = control("version", "--output", "json")
    assert ran.returncode == 0, ran.stderr
    info = json.loads(ran.stdout)
    assert sorted(info) == ["doradus", "numpy", "platform", "pyarrow", "python", "python_executable"]
    assert info["python"] == platform.python_version()
    assert info["doradus"] == "0.1.0"
    assert info["pyarrow"]


def test_version_yaml_and_table(control: Control) -> None:
    assert yaml.safe_load(control("version", "--output", "yaml").stdout)["doradus"] == "0.1.0"
    table = control("version").stdout
    assert "python executable" in table
    assert "pyarrow" in table


def test_completion_bash_parses(control: Control) -> None:
    ran = control("completion", "bash")
    assert ran.returncode == 0, ran.stderr
    assert "_doradus_completion()" in ran.stdout
    assert "_DORADUS_COMPLETE=bash_complete" in ran.stdout
    assert "eval" in ran.stderr  # the install hint, kept off stdout
    parsed = subprocess.run(["bash", "-n"], input=ran.stdout, capture_output=True, text=True, check=False)
    assert parsed.returncode == 0, parsed.stderr


def test_completion_completes_commands(control: Control) -> None:
    script = Path(sys.executable).parent / "doradus"  # click keys completion on the program name
    if not script.exists():
        reason = "the doradus console script is not installed beside Python (`pip install -e .`)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)  # make test installs it: under CI a skip would hide a broken install
        pytest.skip(reason)
    env = {
        **control.env,
        "_DORADUS_COMPLETE": "bash_complete",
        "COMP_WORDS": "doradus doc",
        "COMP_CWORD": "1",
    }
    ran = subprocess.run([str(script)], capture_output=True, text=True, env=env, check=False)
    assert "plain,doctor" in ran.stdout.splitlines()


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_completion_other_shells(control: Control, shell: str) -> None:
    ran = control("completion", shell)
    assert ran.returncode == 0
    assert "_DORADUS_COMPLETE" in ran.stdout
    assert control("completion", "tcsh").returncode == 2


def test_doctor_json_lists_every_check(control: Control) -> None:
    ran = control("doctor", "--output", "json")
    report = json.loads(ran.stdout)
    names = [c["name"] for c in report["checks"]]
    assert names == ["python", "pyarrow", "numpy", "/dev/shm", "memfd", "seqpacket", "fd passing",
                     "runtime folder", "coordinator", "redis", "mqtt", "dora-rs"]  # fmt: skip
    by_name = {c["name"]: c for c in report["checks"]}
    for name in REQUIRED:
        assert by_name[name]["required"] is True
    for name in OPTIONAL:
        assert by_name[name]["required"] is False
        assert by_name[name]["status"] in ("ok", "warn")
    for check in report["checks"]:
        assert check["status"] in ("ok", "warn", "fail")
        assert bool(check["fix"]) == (check["status"] != "ok")
    # On this Linux test machine every required check passes.
    assert all(by_name[name]["status"] == "ok" for name in REQUIRED), report
    assert report["healthy"] is True
    assert ran.returncode == 0


def test_doctor_fails_when_the_coordinator_port_is_taken(control: Control) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {**control.env, "DORADUS_COORDINATOR": f"127.0.0.1:{port}"}
        ran = subprocess.run(
            [*DORADUS, "doctor"], capture_output=True, text=True, env=env, cwd=control.folder, check=False
        )
    assert ran.returncode == 1
    assert "✗ coordinator" in ran.stdout
    assert "not a coordinator" in ran.stdout
    assert "Suggested fix:" in ran.stdout
    assert "required check(s) failed" in ran.stderr


def test_broker_check_reports_reachable_and_unreachable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert _doctor.check_broker("redis", port, "redis").status == "ok"
    gone = _doctor.check_broker("redis", port, "redis")
    assert gone.status == "warn"
    assert "pip install 'doradus[redis]'" in gone.fix


def test_runtime_folder_with_loose_mode_fails(control: Control, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(control.runtime))
    assert _doctor.check_runtime_folder().status == "ok"
    (control.runtime / "doradus").chmod(0o755)
    monkeypatch.setattr(_doctor, "runtime_base", lambda: control.runtime / "doradus")
    loose = _doctor.check_runtime_folder()
    assert loose.status == "fail"
    assert loose.fix.startswith("chmod 700")


def test_a_check_that_raises_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> _doctor.Check:
        raise RuntimeError("boom")

    monkeypatch.setattr(_doctor, "check_memfd", broken)
    checks = {c.name: c for c in _doctor.run_checks()}
    assert checks["memfd"].status == "fail"
    assert "boom" in checks["memfd"].detail
    assert not _doctor.healthy(list(checks.values()))
