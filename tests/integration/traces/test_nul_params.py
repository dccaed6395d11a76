"""A NUL in a query parameter is refused with a 400 naming it (PostgreSQL text cannot hold NUL)."""

import pytest

from tests.integration.ingest.helpers import auth

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("param", "value", "field"),
    [
        ("model", "a\x00b", "model"),
        ("provider", "p\x00", "provider"),
        ("session_id", "s\x00", "session_id"),
        ("user_id", "u\x00", "user_id"),
        ("trace_id", "t\x00", "trace_id"),
        ("environment", "e\x00", "environment"),
        ("q", "x\x00y", "q"),
        ("tag", "team:a\x00", "tag[0]"),
    ],
)
def test_a_nul_in_a_filter_is_400_naming_it(client, key, param, value, field):
    response = client.get("/v1/traces", {param: value}, **auth(key))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]["field"] == field
    assert error["message"] == f"{field}: Null characters are not allowed."
