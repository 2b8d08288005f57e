"""The committed OpenAPI description matches the coordinator's app."""

from __future__ import annotations

import json
from pathlib import Path

from doradus._control.coordinator import create_app, openapi_text

COMMITTED = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_openapi_file_is_current() -> None:
    expected = json.dumps(create_app().openapi(), indent=2, sort_keys=True)
    assert COMMITTED.read_text().strip() == expected, (
        "docs/openapi.json is stale: run `python -m doradus._control.coordinator > docs/openapi.json`"
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


def test_times_are_date_time_strings_and_durations_seconds() -> None:
    schemas = json.loads(COMMITTED.read_text())["components"]["schemas"]
    times = {
        "DataflowSummary": ("started_at", "finished_at"),
        "DataflowDetail": ("started_at", "finished_at"),
        "DaemonInfo": ("connected_at", "last_heartbeat_at", "last_seen_at"),
    }
    for model, keys in times.items():
        properties = schemas[model]["properties"]
        for key in keys:
            variants = properties[key].get("anyOf", [properties[key]])
            assert {"type": "string", "format": "date-time"}.items() <= variants[0].items(), (model, key)
        assert not [k for k in properties if k.endswith(("_at", "time")) and k not in keys], model
    for model in ("DataflowSummary", "DataflowDetail"):
        assert schemas[model]["properties"]["uptime_s"]["type"] == "number"
