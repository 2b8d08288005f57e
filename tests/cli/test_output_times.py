"""Times in ``list``, ``status`` and ``top --once`` JSON/YAML: ISO 8601 UTC strings, durations in ``*_s``."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import yaml
from tests.cli.conftest import Control
from tests.cli.test_control_plane import TICKER, TICKER_PY, eventually

ISO_MS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _moment(text: Any) -> float:
    """Seconds since the epoch of an API time, after checking its exact form."""
    assert isinstance(text, str), text
    assert ISO_MS_UTC.fullmatch(text), text
    return datetime.fromisoformat(text).timestamp()


def _check_times(value: Any, where: str = "") -> None:
    """Every ``*_at`` is an ISO time (or null), every ``*_s`` a number, and no float is an epoch."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("_at") and item is not None:
                _moment(item)
            if key.endswith("_s"):
                assert isinstance(item, (int, float)), (where, key, item)
                assert not isinstance(item, bool), (where, key, item)
            _check_times(item, f"{where}.{key}")
    elif isinstance(value, list):
        for k, item in enumerate(value):
            _check_times(item, f"{where}[{k}]")
    else:
        assert not (isinstance(value, float) and value > 1e9), f"{where} looks like epoch seconds: {value}"


def _time_fields(value: Any, where: str = "") -> dict[str, Any]:
    """Each ``*_at`` value by its path."""
    found: dict[str, Any] = {}
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in items:
        path = f"{where}.{key}"
        if isinstance(key, str) and key.endswith("_at"):
            found[path] = item
        found.update(_time_fields(item, path))
    return found


def _data(control: Control, *args: str) -> Any:
    """``args`` with ``--output json``, checked, and checked again with ``--output yaml``."""
    ran = control(*args, "--output", "json")
    assert ran.returncode == 0, ran.stderr
    as_json = json.loads(ran.stdout)
    ran = control(*args, "--output", "yaml")
    assert ran.returncode == 0, ran.stderr
    as_yaml = yaml.safe_load(ran.stdout)  # an unquoted time would load as a datetime, not a str
    _check_times(as_json)
    _check_times(as_yaml)
    assert _time_fields(as_yaml) == _time_fields(as_json)  # the same strings (metrics move between calls)
    return as_json


def test_list_status_and_top_give_iso_times_and_durations_in_seconds(control: Control) -> None:
    control.write("dataflow.yml", TICKER)
    control.write("ticker.py", TICKER_PY)
    assert control("up").returncode == 0
    before = time.time()
    assert control("start", "dataflow.yml", "--detach", "--name", "first").returncode == 0
    assert control("start", "dataflow.yml", "--detach", "--name", "second").returncode == 0

    def running() -> bool:
        status = json.loads(control("status", "second", "--output", "json").stdout)
        return bool(status["nodes"]["ticker"]["state"] == "running")

    assert eventually(running, 10)
    listed = _data(control, "list")
    assert [d["name"] for d in listed] == ["first", "second"]  # --sort-by started, the default
    for flow in listed:
        assert before - 1 <= _moment(flow["started_at"]) <= time.time()
        assert flow["finished_at"] is None
        assert 0 < flow["uptime_s"] <= time.time() - before + 1
    first, second = listed
    assert _moment(first["started_at"]) <= _moment(second["started_at"])
    by_name = _data(control, "list", "--sort-by", "name")
    assert [d["name"] for d in by_name] == ["first", "second"]

    assert _data(control, "status", "first")["started_at"] == first["started_at"]
    top = _data(control, "top", "--once")
    assert {n["dataflow"] for n in top} == {"first", "second"}

    table = control("list")
    clock = time.strftime("%H:%M:%S", time.localtime(_moment(first["started_at"])))
    assert clock in table.stdout

    assert control("stop", "first", "--grace-duration", "2s").returncode == 0

    def ended() -> bool:
        return json.loads(control("status", "first", "--output", "json").stdout)["status"] != "running"

    assert eventually(ended, 10)
    done = _data(control, "status", "first")
    started, finished = _moment(done["started_at"]), _moment(done["finished_at"])
    assert started <= finished <= time.time()
    assert abs(done["uptime_s"] - (finished - started)) < 0.01  # times are cut to the millisecond
    time.sleep(0.2)
    assert _data(control, "status", "first")["uptime_s"] == done["uptime_s"]  # ended: it stays

    daemons = control.api("GET", "/daemons").json()
    _check_times(daemons)
    assert _moment(daemons[0]["connected_at"]) <= _moment(daemons[0]["last_seen_at"]) <= time.time()
