"""Schema-driven fuzzing of the real server with every schemathesis check: no request the
schema allows may cause a 5xx, every answer (status, headers, body) matches the schema, and
invalid requests are refused (bounded: a few dozen examples per operation). The settings in
``schemathesis.toml`` say which refusals of schema-valid uploads are the API's contract."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

EXAMPLES = 25
CONFIG = Path(__file__).with_name("schemathesis.toml")


def all_checks() -> list:
    load_all_checks()
    return CHECKS.get_all()


def test_no_request_causes_a_server_error(server):
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=SchemathesisConfig.from_path(CONFIG))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 6
    checks = all_checks()
    assert len(checks) >= 10 and "positive_data_acceptance" in {c.__name__ for c in checks}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def check(case):
            # With the token, so fuzzing reaches past the auth check into uploads and job lookups.
            case.call_and_validate(headers=server.auth, checks=checks, timeout=60)

        check()
