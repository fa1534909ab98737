"""Schema-driven fuzzing of the real server: no request the schema allows may cause a 5xx,
and every answer matches the schema (bounded: a few dozen examples per operation)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

EXAMPLES = 25


def test_no_request_causes_a_server_error(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 6

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def check(case):
            # With the token, so fuzzing reaches past the auth check into uploads and job lookups.
            case.call_and_validate(headers=server.auth, checks=[not_a_server_error, response_schema_conformance], timeout=60)

        check()
