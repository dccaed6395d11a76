"""The Langfuse connector end to end: the OTLP path, and the ingestion API with a 207 naming a failed
event."""

from __future__ import annotations

import base64

import orjson

from apps.delivery.sender import send_all
from apps.destinations.connectors import connector_for
from apps.destinations.models import Destination
from tests.fakes.otlp_recorder import running_recorder
from tests.unit.connectors.otel_samples import decode_protobuf, error_span, llm_span, root_span, spans_of


def _destination(url: str, api: str) -> Destination:
    d = Destination(
        type="langfuse",
        config={"host": "https://cloud.langfuse.com", "api_url": url, "public_key": "pk", "api": api},
    )
    d.secrets = {"secret_key": "sk"}
    return d


def test_otlp_and_ingestion_delivery():
    connector = connector_for("langfuse")
    spans = [root_span(), llm_span(), error_span()]
    with running_recorder("langfuse") as recorder:
        outcome = send_all(
            connector, connector.build_requests(_destination(recorder.url, "otlp"), spans, message_id="m")
        )
        assert outcome.ok and outcome.item_errors == []
        requests = connector.build_requests(_destination(recorder.url, "ingestion"), spans, message_id="m")
        batch = orjson.loads(requests[0].body)["batch"]
        generation = next(e for e in batch if e["type"] == "generation-create")
        recorder.fail_events = {generation["id"]}
        outcome = send_all(connector, requests)
    assert outcome.ok and outcome.status == 207
    assert outcome.item_errors == [
        {
            "span_id": "span-llm-1",
            "status": 400,
            "message": "Invalid request data",
            "event_id": generation["id"],
        }
    ]
    otlp_request, ingestion_request = recorder.requests
    basic = "Basic " + base64.b64encode(b"pk:sk").decode()
    assert otlp_request["path"] == "/api/public/otel/v1/traces"
    assert otlp_request["headers"]["authorization"] == basic
    assert otlp_request["headers"]["x-langfuse-ingestion-version"] == "4"
    assert len(spans_of(decode_protobuf(otlp_request["body"]))) == 3
    assert ingestion_request["path"] == "/api/public/ingestion"
    assert ingestion_request["headers"]["authorization"] == basic
