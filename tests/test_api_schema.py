"""schemathesis against the OpenAPI schema the app serves: no 5xx, no response that breaks the schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.api_stack import ApiStack

FUZZ_KEY = "fuzz-key"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("schema")
    stack = ApiStack(None, tmp, f"fuzz-{uuid.uuid4().hex[:8]}", api_write_keys=(FUZZ_KEY,), api_read_keys=(FUZZ_KEY,))
    stack.start()
    yield schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
    stack.stop()


def test_the_api_honours_its_schema(api_schema: Any) -> None:
    # Driven through hypothesis directly: schemathesis's pytest plugin does not load under pytest 9.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case: Any) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {FUZZ_KEY}"},
                checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
                allow_redirects=False,
                timeout=30,
            )

        conforms()
