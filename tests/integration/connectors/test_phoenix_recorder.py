"""The Phoenix connector end to end against a recorder that, like Phoenix, takes protobuf only."""

from __future__ import annotations

from apps.delivery.sender import send_all
from apps.destinations.connectors import connector_for
from apps.destinations.models import Destination
from tests.fakes.otlp_recorder import running_recorder
from tests.unit.connectors.otel_samples import attributes, decode_protobuf, llm_span, root_span, spans_of


def test_delivery():
    connector = connector_for("phoenix")
    with running_recorder("phoenix") as recorder:
        d = Destination(type="phoenix", config={"endpoint": recorder.url, "project": "bots"})
        d.secrets = {"api_key": "px"}
        outcome = send_all(connector, connector.build_requests(d, [root_span(), llm_span()], message_id="m"))
    assert outcome.ok and outcome.status == 200
    [request] = recorder.requests
    assert request["path"] == "/v1/traces" and request["headers"]["authorization"] == "Bearer px"
    message = decode_protobuf(request["body"])
    assert attributes(message.resource_spans[0].resource)["openinference.project.name"] == "bots"
    kinds = {s.name: attributes(s)["openinference.span.kind"] for s in spans_of(message)}
    assert kinds == {"answer question": "CHAIN", "chat gpt-4o": "LLM"}
