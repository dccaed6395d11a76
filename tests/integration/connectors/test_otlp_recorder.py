"""The OTLP connector end to end: send_all to a loopback recorder answering like an OTLP receiver."""

from __future__ import annotations

from apps.delivery.sender import send_all
from apps.destinations.connectors import connector_for
from apps.destinations.models import Destination
from tests.fakes.otlp_recorder import running_recorder
from tests.unit.connectors.otel_samples import (
    decode_otlp_json,
    decode_protobuf,
    llm_span,
    root_span,
    spans_of,
)


def _destination(url: str, protocol: str) -> Destination:
    d = Destination(type="otlp", config={"endpoint": url, "protocol": protocol})
    d.secrets = {"headers": {"authorization": "Bearer t"}}
    return d


def test_protobuf_and_json_delivery():
    connector = connector_for("otlp")
    with running_recorder("otlp") as recorder:
        for protocol in ("http/protobuf", "http/json"):
            requests = connector.build_requests(
                _destination(recorder.url, protocol), [root_span(), llm_span()], message_id="m"
            )
            outcome = send_all(connector, requests)
            assert outcome.ok and outcome.item_errors == []
        recorder.rejected = 1
        requests = connector.build_requests(
            _destination(recorder.url, "http/protobuf"), [llm_span()], message_id="m"
        )
        partial = send_all(connector, requests)
    assert partial.ok and partial.item_errors[0]["rejected_spans"] == 1
    first, second, _ = recorder.requests
    assert first["path"] == second["path"] == "/v1/traces"
    assert first["headers"]["authorization"] == "Bearer t"
    assert decode_otlp_json(second["body"]) == decode_protobuf(first["body"])
    assert {s.name for s in spans_of(decode_protobuf(first["body"]))} == {"answer question", "chat gpt-4o"}
