"""End to end: the HoneyHive connector's requests sent by `send_all` to a loopback
recorder that answers as HoneyHive's events batch route does, parsing each body with the
SDK's request model (200 `{event_ids, success}`; 401 for a bad key; 400 for a body the
model refuses)."""

from __future__ import annotations

import orjson
from honeyhive._generated.models.PostEventBatchResponse import PostEventBatchResponse
from honeyhive.models import PostEventBatchRequest
from pydantic import ValidationError

from apps.delivery.sender import send_all
from apps.destinations.connectors.honeyhive import HoneyHiveConnector, stable_uuid
from tests.fakes.platform_recorder import running_recorder
from tests.unit.connectors import obs_samples as samples

JSON = {"content-type": "application/json"}


def events_batch(record):
    if record["headers"].get("authorization") != "Bearer hh-key":
        return 401, b'{"error": "Unauthorized"}', JSON
    if record["path"] != "/events/batch":
        return 404, b'{"error": "Not found"}', JSON
    try:
        batch = PostEventBatchRequest.model_validate(orjson.loads(record["body"]))
    except ValidationError as exc:
        return 400, orjson.dumps({"error": str(exc)}), JSON
    answer = {"event_ids": [event.event_id for event in batch.events], "success": True}
    PostEventBatchResponse.model_validate(answer)
    return 200, orjson.dumps(answer), JSON


def dest(url: str, key: str = "hh-key"):
    return samples.destination("honeyhive", {"project": "Support", "api_url": url}, {"api_key": key})


def test_trace_delivered():
    connector = HoneyHiveConnector()
    with running_recorder(events_batch) as recorder:
        spans = [*samples.trace(), samples.bare()]
        outcome = send_all(connector, connector.build_requests(dest(recorder.url), spans, message_id="m"))
    assert outcome.ok and outcome.status == 200
    (record,) = recorder.requests
    events = orjson.loads(record["body"])["events"]
    assert [e["event_id"] for e in events] == [stable_uuid(s["id"]) for s in spans]
    assert {e["project"] for e in events} == {"Support"}
    root, llm, tool, bare = events
    assert llm["parent_id"] == tool["parent_id"] == root["event_id"]
    assert root["parent_id"] == root["session_id"] == llm["session_id"]
    assert tool["error"] == "TimeoutError: carrier API timed out"
    assert bare["session_id"] == stable_uuid("trace-bare")
    assert orjson.loads(outcome.body)["event_ids"] == [e["event_id"] for e in events]


def test_bad_key_is_permanent():
    connector = HoneyHiveConnector()
    with running_recorder(events_batch) as recorder:
        requests = connector.build_requests(dest(recorder.url, key="nope"), samples.trace(), message_id="m")
        outcome = send_all(connector, requests)
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, 401)


def test_server_error_is_retryable():
    connector = HoneyHiveConnector()
    with running_recorder(lambda record: (503, b'{"error": "unavailable"}', JSON)) as recorder:
        outcome = send_all(
            connector, connector.build_requests(dest(recorder.url), samples.trace(), message_id="m")
        )
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, True, 503)
