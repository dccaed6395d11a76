"""Keywords AI end to end: the batch of logs sent by the delivery sender to a local recorder
that answers like the batch endpoint, refusing one log in the batch."""

from __future__ import annotations

import orjson

from apps.delivery.sender import send_all
from apps.destinations.connectors import connector_for
from tests.fakes.platform_recorder import running_recorder
from tests.unit.connectors.llm_samples import destination, trace


def test_logs_reach_the_batch_endpoint_with_per_item_errors():
    def answer(record):
        if record["headers"].get("authorization") != "Bearer key-123":
            return 401, b'{"detail": "Authentication credentials were not provided."}', {}
        logs = orjson.loads(record["body"])["logs"]
        items = [
            {"error": "status_code 500 logs need a model"}
            if log["status_code"] == 500 and "model" not in log
            else {"id": f"log-{i}"}
            for i, log in enumerate(logs)
        ]
        return 201, orjson.dumps(items), {"content-type": "application/json"}

    connector = connector_for("keywordsai")
    with running_recorder(answer) as recorder:
        dest = destination("keywordsai", {"api_url": recorder.url})
        outcome = send_all(connector, connector.build_requests(dest, trace(), message_id="m1"))

    assert outcome.ok and outcome.status == 201
    assert outcome.item_errors == [
        {"span_id": "span-tool-1", "status": 400, "message": "status_code 500 logs need a model"}
    ]
    [record] = recorder.requests
    assert record["path"] == "/api/request-logs/batch/create"
    assert [log["span_unique_id"] for log in orjson.loads(record["body"])["logs"]] == [
        "span-root",
        "span-llm-1",
        "span-tool-1",
    ]
