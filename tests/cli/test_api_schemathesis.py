"""The coordinator's HTTP API against its OpenAPI description, by schemathesis.

A real coordinator and machine daemon (`doradus up`, with its token) answer requests that
schemathesis generates from the API's own OpenAPI description, valid and malformed: no
answer may be a server error (5xx), and every answer must conform to the description
(declared status code, content type and body schema). A bounded number of examples per
operation keeps it fast. The operations that end the coordinator or start processes from
the request (`destroy`, starting a dataflow, `report` from a daemon) are left out: other
tests drive them with meaningful requests.
"""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.cli.conftest import Control

from doradus._control.coordinator import openapi_text

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


EXCLUDED = r"/destroy$|/report$"
EXAMPLES = int(os.environ.get("DORADUS_FUZZ_API_EXAMPLES", "200")) if os.environ.get("DORADUS_FUZZ") else 15
"""Examples per operation and mode: 15 meet every parameter and body shape once; `make fuzz` runs more."""


def _schema(control: Control) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(json.loads(openapi_text()))
    schema.config.update(base_url=f"http://{control.address}")
    return schema.exclude(path_regex=EXCLUDED).exclude(method="POST", path="/api/v1/dataflows")


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_the_api_answers_as_described(control: Control, mode: schemathesis.GenerationMode) -> None:
    assert control("up").returncode == 0
    # Found here once: a node stop's unbounded grace was a 500 (the restart request bounds it).
    huge_grace = control.api("POST", "/dataflows/x/nodes/y/stop", json={"grace_seconds": 4.5e16})
    assert huge_grace.status_code == 422, huge_grace.text
    operations = [result.ok() for result in _schema(control).get_all_operations()]
    assert len(operations) >= 10, "the OpenAPI description lost its operations"
    skipped: list[str] = []
    for operation in operations:

        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=operation.as_strategy(mode, headers=control.headers))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            check()
        except Unsatisfiable:  # nothing to malform (no parameter, no body): positive mode covers it
            skipped.append(operation.label)
    assert mode == schemathesis.GenerationMode.NEGATIVE or not skipped, skipped
