"""Property-based fuzzing of every documented route with schemathesis (its Python API):
no 5xx, status codes / content types / bodies conform to the OpenAPI schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.utils.api import seed_project

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture
def fuzz_app(make_client):
    client = make_client(start_worker=True, rate_limit="1000/minute")
    ctx = client.app.state.ctx
    ctx.sse_poll_interval = 0.02
    ctx.delete_wait_seconds = 0.5
    seed_project(ctx, model=True)  # something to list
    return client.app


def test_fuzz_every_operation(fuzz_app) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operations = [r.ok() for r in schema.get_all_operations()]
    names = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"POST /api/v1/upload", "GET /api/v1/status/{project_id}", "GET /health",
            "GET /files/{bucket}/{key}"} <= names
    for op in operations:
        if op.path.endswith("/events"):
            continue  # random ids only give 404s; the stream itself is tested in test_events

        strategy = op.as_strategy() | op.as_strategy(generation_mode=GenerationMode.NEGATIVE)

        @given(case=strategy)
        @settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            case.call_and_validate(checks=CHECKS)

        run()
