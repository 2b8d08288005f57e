"""The committed OpenAPI description matches the coordinator's app."""

from __future__ import annotations

import json
from pathlib import Path

from doradus._coordinator import create_app, openapi_text

COMMITTED = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_openapi_file_is_current() -> None:
    expected = json.dumps(create_app().openapi(), indent=2, sort_keys=True)
    assert COMMITTED.read_text().strip() == expected, (
        "docs/openapi.json is stale: run `python -m doradus._coordinator > docs/openapi.json`"
    )
    assert openapi_text().strip() == expected


def test_openapi_covers_the_contract() -> None:
    paths = json.loads(COMMITTED.read_text())["paths"]
    for path in (
        "/api/v1/health",
        "/api/v1/daemons",
        "/api/v1/dataflows",
        "/api/v1/dataflows/{name_or_id}",
        "/api/v1/dataflows/{name_or_id}/stop",
        "/api/v1/dataflows/{name_or_id}/logs",
        "/api/v1/destroy",
    ):
        assert path in paths
