"""End to end: the Lunary connector's requests sent by `send_all` to a loopback recorder
that answers as Lunary's run ingestion does: 200 `{results: [{id, success, error?}]}`
per event, a repeated `start` of a known run reported as an error, 401 for an unknown
project key."""

from __future__ import annotations

import orjson

from apps.delivery.sender import send_all
from apps.destinations.connectors.lunary import LunaryConnector, run_id
from tests.fakes.platform_recorder import running_recorder
from tests.unit.connectors import obs_samples as samples

JSON = {"content-type": "application/json"}


class Ingest:
    """Lunary's ingest route in miniature: it keeps the runs it has started."""

    def __init__(self) -> None:
        self.started: set[str] = set()
        self.ended: set[str] = set()
        self.refuse: set[str] = set()

    def __call__(self, record):
        if record["headers"].get("authorization") != "Bearer lunary-key":
            return 401, b'{"error": "Project does not exist"}', JSON
        if record["path"] != "/v1/runs/ingest":
            return 404, b"{}", JSON
        events = orjson.loads(record["body"])["events"]
        results = []
        for event in sorted(events, key=lambda e: e["timestamp"]):
            rid = event["runId"]
            if rid in self.refuse:
                results.append({"id": rid, "success": False, "error": "Invalid run"})
            elif event["event"] == "start" and rid in self.started:
                results.append({"id": rid, "success": False, "error": "Run already exists"})
            else:
                (self.started if event["event"] == "start" else self.ended).add(rid)
                results.append({"id": rid, "success": True})
        return 200, orjson.dumps({"results": results}), JSON


def dest(url: str, key: str = "lunary-key"):
    return samples.destination("lunary", {"api_url": url}, {"api_key": key})


def test_trace_delivered_and_resend_is_clean():
    connector = LunaryConnector()
    ingest = Ingest()
    spans = [*samples.trace(), samples.bare()]
    with running_recorder(ingest) as recorder:
        first = send_all(connector, connector.build_requests(dest(recorder.url), spans, message_id="m"))
        again = send_all(connector, connector.build_requests(dest(recorder.url), spans, message_id="m"))
    assert first.ok and first.item_errors == []
    assert again.ok and again.item_errors == []
    expected = {run_id(s["id"]) for s in spans}
    assert ingest.started == ingest.ended == expected
    events = orjson.loads(recorder.requests[0]["body"])["events"]
    starts = {e["runId"]: e for e in events if e["event"] == "start"}
    assert starts[run_id("span-llm")]["parentRunId"] == run_id("span-agent")
    assert [e["event"] for e in events if e["runId"] == run_id("span-tool")] == ["start", "error"]


def test_refused_runs_are_item_errors():
    connector = LunaryConnector()
    ingest = Ingest()
    ingest.refuse.add(run_id("span-tool"))
    with running_recorder(ingest) as recorder:
        outcome = send_all(
            connector, connector.build_requests(dest(recorder.url), samples.trace(), message_id="m")
        )
    assert outcome.ok
    assert outcome.item_errors == [{"span_id": "span-tool", "status": "rejected", "message": "Invalid run"}]


def test_unknown_project_is_permanent():
    connector = LunaryConnector()
    with running_recorder(Ingest()) as recorder:
        requests = connector.build_requests(dest(recorder.url, key="other"), samples.trace(), message_id="m")
        outcome = send_all(connector, requests)
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, 401)
