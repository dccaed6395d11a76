"""LangWatch end to end: traces sent by the delivery sender to a local recorder that answers
like the collector ("Trace received successfully.", then "No changes" for an identical resend)."""

from __future__ import annotations

import orjson
from langwatch.domain import CollectorRESTParams
from pydantic import TypeAdapter

from apps.delivery.sender import send_all
from apps.destinations.connectors import connector_for
from tests.fakes.platform_recorder import running_recorder
from tests.unit.connectors.llm_samples import destination, trace


def test_trace_reaches_the_collector_and_an_identical_resend_is_accepted():
    bodies: set[bytes] = set()

    def answer(record):
        if record["headers"].get("x-auth-token") != "key-123":
            return 401, b'{"message": "Invalid auth token."}', {}
        if record["headers"].get("content-type") != "application/json":
            return 400, b'{"message": "Invalid content type"}', {}
        body = orjson.loads(record["body"])
        if len(body["spans"]) > 200:
            return 429, b'{"message": "Too many spans"}', {}
        if record["body"] in bodies:
            return 200, b'{"message": "No changes"}', {}
        bodies.add(record["body"])
        return 200, b'{"message": "Trace received successfully."}', {}

    connector = connector_for("langwatch")
    with running_recorder(answer) as recorder:
        dest = destination("langwatch", {"api_url": recorder.url})
        first = send_all(connector, connector.build_requests(dest, trace(), message_id="m1"))
        again = send_all(connector, connector.build_requests(dest, trace(), message_id="m1"))

    assert first.ok and again.ok
    assert "No changes" in again.body
    record = recorder.requests[0]
    assert record["path"] == "/api/collector"
    body = orjson.loads(record["body"])
    TypeAdapter(CollectorRESTParams).validate_python({"expected_output": None, "evaluations": None, **body})
    assert len(body["spans"]) == 3
