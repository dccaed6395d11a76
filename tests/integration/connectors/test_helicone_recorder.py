"""Helicone end to end: one async log per span sent by the delivery sender to a local
recorder that answers like the worker (200 "ok" with a helicone-id header)."""

from __future__ import annotations

import orjson

from apps.delivery.sender import send_all
from apps.destinations.connectors import connector_for
from tests.fakes.platform_recorder import running_recorder
from tests.unit.connectors.llm_samples import destination, trace


def test_one_log_per_span_reaches_the_worker():
    def answer(record):
        if record["headers"].get("authorization") != "Bearer key-123":
            return 401, b'{"error": "Authorization header is required"}', {}
        body = orjson.loads(record["body"])
        request_id = body["providerRequest"]["meta"]["Helicone-Request-Id"]
        return 200, b"ok", {"helicone-id": request_id}

    connector = connector_for("helicone")
    with running_recorder(answer) as recorder:
        dest = destination("helicone", {"api_url": recorder.url})
        outcome = send_all(connector, connector.build_requests(dest, trace(), message_id="m1"))
        failing = []

        def storage_error(record):
            failing.append(record)
            return 200, b'{"error": "failed to insert"}', {}

        recorder.answer = storage_error
        retry = send_all(connector, connector.build_requests(dest, trace()[:1], message_id="m2"))

    assert outcome.ok and outcome.status == 200
    assert [r["path"] for r in recorder.requests[:3]] == ["/custom/v1/log", "/oai/v1/log", "/custom/v1/log"]
    paths = [
        orjson.loads(r["body"])["providerRequest"]["meta"]["Helicone-Session-Path"]
        for r in recorder.requests[:3]
    ]
    assert paths == ["/support-agent", "/support-agent/chat gpt-4o", "/support-agent/lookup_order"]
    assert not retry.ok and retry.retryable and len(failing) == 1
