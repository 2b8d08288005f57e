"""The coordinator's API refuses requests outside their bounds with 422, naming the field."""

from __future__ import annotations

import pytest
from tests.cli.conftest import Control

EXTERNAL = {"name": "flow", "id": "01a2", "nodes": ["a"], "machine": "m", "path": "/srv/flow.yml"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", ""), ("id", "../../x"), ("name", ""), ("machine", ""), ("path", "")],
)
def test_an_external_dataflow_needs_a_plain_id_and_names(control: Control, field: str, value: str) -> None:
    assert control("up").returncode == 0
    response = control.api("POST", "/dataflows/external", json={**EXTERNAL, field: value})
    assert response.status_code == 422, response.text
    assert field in response.text
    assert control.api("GET", "/dataflows").json() == []  # nothing was registered


def test_a_stop_grace_is_bounded(control: Control) -> None:
    assert control("up").returncode == 0
    assert control.api("POST", "/dataflows/external", json=EXTERNAL).status_code == 201
    response = control.api("POST", "/dataflows/flow/stop", json={"grace_seconds": 1e9})
    assert response.status_code == 422, response.text
    assert "grace_seconds" in response.text
    response = control.api("POST", "/dataflows/flow/stop", json={"grace_seconds": -1})
    assert response.status_code == 422, response.text
