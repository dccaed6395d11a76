"""MLflow: OTLP protobuf to the tracking server's root `/v1/traces` with the experiment header."""

from __future__ import annotations

import json

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from apps.destinations.connectors import connector_for
from apps.destinations.models import Destination
from tests.unit.connectors.otel_samples import (
    ROOT,
    attributes,
    by_name,
    decode_protobuf,
    error_span,
    llm_span,
    minimal_span,
    root_span,
    spans_of,
)


def build(spans, **config):
    d = Destination(
        type="mlflow", config={"tracking_uri": "http://mlflow.internal:5000/", "experiment_id": "7", **config}
    )
    return connector_for("mlflow").build_requests(d, spans, message_id="m1")


def test_request_shape():
    [request] = build([root_span(), llm_span()])
    assert request.url == "http://mlflow.internal:5000/v1/traces"
    assert request.headers["x-mlflow-experiment-id"] == "7"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.span_count == 2
    spans = by_name(decode_protobuf(request.body))
    assert spans["chat gpt-4o"].parent_span_id.hex() == ROOT
    assert not spans["answer question"].parent_span_id  # the root: MLflow completes the trace with it


def test_attributes_mlflow_translates():
    spans = by_name(decode_protobuf(build([root_span(), llm_span()])[0].body))
    attrs = attributes(spans["chat gpt-4o"])
    # OpenInference (read first by MLflow) and GenAI (read next)
    assert attrs["openinference.span.kind"] == "LLM"
    assert attrs["llm.token_count.prompt"] == 12 and attrs["llm.token_count.total"] == 15
    assert json.loads(attrs["input.value"])[1]["content"] == "hi"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.response.model"] == "gpt-4o" and attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 3
    assert attributes(spans["answer question"])["openinference.span.kind"] == "CHAIN"


def test_api_url_and_experiment():
    [request] = build([minimal_span()], api_url="http://proxy:8080", experiment_id="0")
    assert request.url == "http://proxy:8080/v1/traces"
    assert request.headers["x-mlflow-experiment-id"] == "0"


def test_error_and_minimal_spans():
    spans = spans_of(decode_protobuf(build([error_span(), minimal_span()])[0].body))
    assert spans[0].status.code == Status.STATUS_CODE_ERROR and spans[0].events[0].name == "exception"
    assert len(spans[1].trace_id) == 16 and len(spans[1].span_id) == 8


def test_split():
    assert [r.span_count for r in build([llm_span(id=f"s{i}") for i in range(513)])] == [512, 1]


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (422, False), (501, False), (429, True), (503, True)]
)
def test_classify(status, retryable):
    outcome = connector_for("mlflow").classify(httpx.Response(status, json={"detail": "no"}))
    assert not outcome.ok and outcome.retryable is retryable
