from __future__ import annotations

import pytest

from tests.integration.ingest.helpers import post


@pytest.fixture
def key(api_key) -> str:
    """The usable secret of a key with every scope on `project`."""
    return api_key.secret


@pytest.fixture
def ingest(client, key):
    """Store spans through POST /v1/traces/batch, as a client would."""

    def run(spans: list[dict]) -> None:
        response = post(client, "/v1/traces/batch", {"traces": spans}, key)
        assert response.status_code == 202, response.content

    return run
