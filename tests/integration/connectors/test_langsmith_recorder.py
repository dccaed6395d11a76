"""LangSmith end to end: the connector's requests sent by the delivery sender to a local
recorder that answers like /runs/batch (202, then 409 for runs that already exist)."""

from __future__ import annotations

import orjson
from langsmith import schemas

from apps.delivery.sender import send_all
from apps.destinations.connectors import connector_for
from tests.fakes.platform_recorder import running_recorder
from tests.unit.connectors.llm_samples import destination, trace


def test_runs_reach_the_batch_endpoint_and_a_resend_is_accepted():
    seen: set[str] = set()

    def answer(record):
        if record["headers"].get("x-api-key") != "key-123":
            return 401, b'{"detail": "Invalid token"}', {}
        ids = {run["id"] for run in orjson.loads(record["body"])["post"]}
        if ids & seen:
            return 409, b'{"detail": "Run already exists"}', {}
        seen.update(ids)
        return 202, b'{"message": "Runs batch ingested"}', {}

    connector = connector_for("langsmith")
    with running_recorder(answer) as recorder:
        dest = destination("langsmith", {"api_url": recorder.url, "project": "p1"})
        first = send_all(connector, connector.build_requests(dest, trace(), message_id="m1"))
        again = send_all(connector, connector.build_requests(dest, trace(), message_id="m1"))
        bad = destination("langsmith", {"api_url": recorder.url}, api_key="wrong")
        refused = send_all(connector, connector.build_requests(bad, trace(), message_id="m2"))

    assert first.ok and first.status == 202
    assert again.ok and again.status == 409
    assert not refused.ok and refused.status == 401 and not refused.retryable
    record = recorder.requests[0]
    assert record["path"] == "/runs/batch"
    runs = orjson.loads(record["body"])["post"]
    assert len(runs) == 3
    for run in runs:
        schemas.Run(**run)
        assert run["session_name"] == "p1"
