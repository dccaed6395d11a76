"""End to end: the Datadog connector's requests sent by `send_all` to a loopback recorder
that answers as Datadog's span intake does (202 with an empty body; 403 for a bad key;
429 with X-RateLimit-Reset when throttled)."""

from __future__ import annotations

import orjson

from apps.delivery.sender import send_all
from apps.destinations.connectors.datadog import PATH, DatadogConnector
from tests.fakes.platform_recorder import running_recorder
from tests.unit.connectors import obs_samples as samples


def intake(record):
    if record["headers"].get("dd-api-key") != "dd-key":
        return 403, b'{"errors": ["Forbidden"]}', {"content-type": "application/json"}
    if record["path"] != PATH:
        return 404, b'{"errors": ["Not found"]}', {"content-type": "application/json"}
    return 202, b"", {}


def dest(url: str, key: str = "dd-key"):
    config = {"site": "datadoghq.com", "ml_app": "support-bot", "api_url": url}
    return samples.destination("datadog", config, {"api_key": key})


def test_trace_delivered(monkeypatch):
    monkeypatch.setattr(DatadogConnector, "max_batch_spans", 2)
    connector = DatadogConnector()
    with running_recorder(intake) as recorder:
        spans = [*samples.trace(), samples.bare()]
        outcome = send_all(connector, connector.build_requests(dest(recorder.url), spans, message_id="m"))
    assert outcome.ok and outcome.status == 202
    assert len(recorder.requests) == 2
    received = []
    for record in recorder.requests:
        assert record["path"] == "/api/intake/llm-obs/v1/trace/spans"
        assert record["headers"]["content-type"] == "application/json"
        attributes = orjson.loads(record["body"])["data"]["attributes"]
        assert attributes["ml_app"] == "support-bot"
        received += attributes["spans"]
    assert [s["span_id"] for s in received] == ["span-agent", "span-llm", "span-tool", "span-bare"]
    assert [s["parent_id"] for s in received] == ["undefined", "span-agent", "span-agent", "undefined"]
    assert received[2]["status"] == "error"


def test_bad_key_is_permanent():
    connector = DatadogConnector()
    with running_recorder(intake) as recorder:
        requests = connector.build_requests(dest(recorder.url, key="wrong"), samples.trace(), message_id="m")
        outcome = send_all(connector, requests)
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, 403)
    assert "Forbidden" in outcome.message


def test_throttle_is_retried_later():
    connector = DatadogConnector()

    def throttled(record):
        return 429, b'{"errors": ["Too many requests"]}', {"x-ratelimit-reset": "12"}

    with running_recorder(throttled) as recorder:
        outcome = send_all(
            connector, connector.build_requests(dest(recorder.url), samples.trace(), message_id="m")
        )
    assert (outcome.ok, outcome.retryable, outcome.retry_after) == (False, True, 12.0)
