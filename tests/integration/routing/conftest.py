from __future__ import annotations

import pytest

from tests.factories import DestinationFactory
from tests.integration.ingest.helpers import post


@pytest.fixture
def destinations(project):
    """Two webhook destinations of `project`."""
    return [DestinationFactory(project=project, name=name) for name in ("primary", "secondary")]


@pytest.fixture
def ingest(client, api_key):
    """Store spans through POST /v1/traces/batch, as a client would."""

    def run(spans: list[dict]) -> None:
        response = post(client, "/v1/traces/batch", {"traces": spans}, api_key.secret)
        assert response.status_code == 202, response.content

    return run


def error(response, status: int, code: str = "invalid_request") -> dict:
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    return body
