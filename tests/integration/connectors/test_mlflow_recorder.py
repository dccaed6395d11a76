"""The MLflow connector end to end against a recorder that, like MLflow, wants the experiment header."""

from __future__ import annotations

from apps.delivery.sender import send_all
from apps.destinations.connectors import connector_for
from apps.destinations.models import Destination
from tests.fakes.otlp_recorder import running_recorder
from tests.unit.connectors.otel_samples import decode_protobuf, error_span, llm_span, root_span, spans_of


def test_delivery():
    connector = connector_for("mlflow")
    with running_recorder("mlflow") as recorder:
        d = Destination(type="mlflow", config={"tracking_uri": recorder.url, "experiment_id": "3"})
        spans = [root_span(), llm_span(), error_span()]
        outcome = send_all(connector, connector.build_requests(d, spans, message_id="m"))
    assert outcome.ok
    [request] = recorder.requests
    assert request["path"] == "/v1/traces" and request["headers"]["x-mlflow-experiment-id"] == "3"
    assert len(spans_of(decode_protobuf(request["body"]))) == 3
