from __future__ import annotations

import pytest

from apps.delivery.breaker import reset_breakers
from apps.traces.models import IngestBatch
from tests.factories import DestinationFactory
from tests.fakes.sink import running_sink
from tests.integration.ingest.helpers import post

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(autouse=True)
def _fast_delivery(settings):
    settings.UNTRACE_DELIVERY_LINGER_SECONDS = 0
    settings.UNTRACE_DELIVERY_TIMEOUT = 1.0
    settings.UNTRACE_DELIVERY_BASE_BACKOFF_SECONDS = 0.01
    settings.UNTRACE_CIRCUIT_FAILURES = 3
    settings.UNTRACE_CIRCUIT_RESET_SECONDS = 60
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture
def sink():
    with running_sink(SECRET) as running:
        yield running


@pytest.fixture
def backup_sink():
    with running_sink(SECRET) as running:
        yield running


@pytest.fixture
def hook(project, sink):
    return DestinationFactory(project=project, name="hook", config={"url": sink.url, "secret": SECRET})


@pytest.fixture
def backup(project, backup_sink):
    return DestinationFactory(
        project=project, name="backup", config={"url": backup_sink.url, "secret": SECRET}
    )


@pytest.fixture
def ingest(client, api_key):
    """Store spans through POST /v1/traces/batch; returns the stored batch."""

    def run(spans: list[dict]) -> IngestBatch:
        response = post(client, "/v1/traces/batch", {"traces": spans}, api_key.secret)
        assert response.status_code == 202, response.content
        return IngestBatch.objects.order_by("-created_at").first()

    return run


def spans(n: int, prefix: str = "s", **fields) -> list[dict]:
    return [
        {"id": f"{prefix}{i}", "trace_id": f"t-{prefix}{i}", "model": "gpt-4o-mini", **fields}
        for i in range(n)
    ]
