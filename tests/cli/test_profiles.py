"""Profiles: ``doradus.toml``, ``profile list/show``, ``--profile`` in address discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.cli.conftest import Control, free_port

TOML = """
[profiles.staging]
coordinator = "127.0.0.1:{port}"
output = "json"
log_level = "debug"

[profiles.dev]
token_file = "secret.token"
"""


@pytest.fixture
def profiled(control: Control, tmp_path: Path) -> Control:
    control.env.pop("DORADUS_COORDINATOR", None)
    control.env.pop("DORADUS_PROFILE", None)
    control.env["XDG_CONFIG_HOME"] = str(tmp_path / "config")  # no user file
    control.write("doradus.toml", TOML.format(port=free_port()))
    return control


def test_profile_list_and_show(profiled: Control) -> None:
    listed = profiled("profile", "list")
    assert listed.returncode == 0, listed.stderr
    assert "staging" in listed.stdout
    assert "dev" in listed.stdout
    names = [p["name"] for p in json.loads(profiled("profile", "list", "--output", "json").stdout)]
    assert names == ["dev", "staging"]
    shown = profiled("profile", "show", "staging", "--output", "json")
    data = json.loads(shown.stdout)
    assert data["coordinator"].startswith("127.0.0.1:")
    assert data["output"] == "json"
    assert data["token_file"] is None
    assert data["source"] == str(profiled.folder / "doradus.toml")
    assert yaml.safe_load(profiled("profile", "show", "dev", "--output", "yaml").stdout)["name"] == "dev"
    assert "coordinator" in profiled("profile", "show", "dev").stdout


def test_profile_found_from_a_subfolder(profiled: Control) -> None:
    sub = profiled.folder / "nodes" / "deep"
    sub.mkdir(parents=True)
    profiled.folder = sub
    assert "staging" in profiled("profile", "list").stdout


def test_unknown_key_suggests(profiled: Control) -> None:
    profiled.write("doradus.toml", '[profiles.x]\ncordinator = "1.2.3.4:5"\n')
    ran = profiled("profile", "show", "x")
    assert ran.returncode == 2
    assert "unknown key `cordinator`" in ran.stderr
    assert "did you mean `coordinator`?" in ran.stderr


def test_missing_profile_exits_2_with_list(profiled: Control) -> None:
    ran = profiled("--profile", "stagin", "list", "--retries", "0")
    assert ran.returncode == 2
    assert "no profile 'stagin'" in ran.stderr
    assert "profiles: dev, staging" in ran.stderr
    assert "did you mean `staging`?" in ran.stderr
    from_env = profiled.env | {"DORADUS_PROFILE": "nope"}
    profiled.env = from_env
    assert profiled("profile", "list").returncode == 2


def test_profile_sets_the_coordinator(profiled: Control) -> None:
    address = json.loads(profiled("profile", "show", "staging", "--output", "json").stdout)["coordinator"]
    ran = profiled("--profile", "staging", "list", "--retries", "0", "--retry-interval", "0")
    assert ran.returncode == 1
    assert "Loaded profile: staging" in ran.stderr
    assert f"coordinator at {address}" in ran.stderr
    # The variable still wins over the profile.
    profiled.env["DORADUS_COORDINATOR"] = f"127.0.0.1:{free_port()}"
    again = profiled("--profile", "staging", "list", "--retries", "0", "--retry-interval", "0")
    assert f"coordinator at {address}" not in again.stderr
