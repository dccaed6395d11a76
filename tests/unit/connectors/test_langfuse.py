"""Langfuse: the OTLP endpoint (default) and the legacy ingestion API, whose events are validated with the
`langfuse` 2.x SDK's own pydantic models (plus a check that no field outside them is sent, since those
models allow extras)."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import orjson
import pytest
from langfuse.api.resources.ingestion.types import (
    CreateGenerationBody,
    CreateSpanBody,
    IngestionEvent_GenerationCreate,
    IngestionEvent_SpanCreate,
    IngestionEvent_TraceCreate,
    IngestionResponse,
    TraceBody,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from apps.destinations.connectors import connector_for
from apps.destinations.connectors import otlp_encoding as otlp
from apps.destinations.models import Destination
from tests.unit.connectors.otel_samples import (
    ROOT,
    TRACE,
    attributes,
    by_name,
    decode_protobuf,
    error_span,
    llm_span,
    minimal_span,
    root_span,
    spans_of,
)

MODELS = {
    "trace-create": (IngestionEvent_TraceCreate, TraceBody),
    "span-create": (IngestionEvent_SpanCreate, CreateSpanBody),
    "generation-create": (IngestionEvent_GenerationCreate, CreateGenerationBody),
}
BASIC = "Basic " + base64.b64encode(b"pk-lf-1:sk-lf-1").decode()


def destination(**config) -> Destination:
    d = Destination(
        type="langfuse", config={"host": "https://cloud.langfuse.com", "public_key": "pk-lf-1", **config}
    )
    d.secrets = {"secret_key": "sk-lf-1"}
    return d


def build(spans, **config):
    return connector_for("langfuse").build_requests(destination(**config), spans, message_id="m1")


def validated(body: bytes) -> list[dict]:
    """Each event through the SDK model of its type; no key outside the model's fields."""
    batch = orjson.loads(body)["batch"]
    for event in batch:
        envelope, body_model = MODELS[event["type"]]
        envelope.parse_obj(event)
        assert set(event) <= {f.alias for f in envelope.__fields__.values()}, event.keys()
        known = {f.alias for f in body_model.__fields__.values()}
        assert set(event["body"]) <= known, set(event["body"]) - known
        assert event["timestamp"].endswith("Z") and len(event["timestamp"]) == 24  # ms precision
    assert len({e["id"] for e in batch}) == len(batch)  # envelope ids are unique
    return batch


# ---------------------------------------------------------------- OTLP (default)


def test_otlp_request():
    [request] = build([root_span(), llm_span()])
    assert request.url == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    assert request.headers["authorization"] == BASIC
    assert request.headers["x-langfuse-ingestion-version"] == "4"
    assert request.headers["content-type"] == "application/x-protobuf"
    spans = by_name(decode_protobuf(request.body))
    attrs = attributes(spans["chat gpt-4o"])
    assert attrs["langfuse.observation.type"] == "generation"
    assert attrs["langfuse.observation.model.name"] == "gpt-4o"
    assert json.loads(attrs["langfuse.observation.usage_details"]) == {"input": 12, "output": 3, "total": 15}
    assert json.loads(attrs["langfuse.observation.cost_details"]) == {"total": 0.000075}
    assert attrs["langfuse.observation.completion_start_time"] == "2026-01-02T03:04:05.373456+00:00"
    assert json.loads(attrs["langfuse.observation.model.parameters"])["max_tokens"] == 64
    assert json.loads(attrs["langfuse.observation.input"])[1] == {"role": "user", "content": "hi"}
    assert json.loads(attrs["langfuse.observation.output"]) == [{"role": "assistant", "content": "hello"}]
    assert attrs["langfuse.observation.metadata.customer"] == "acme"
    assert attrs["langfuse.observation.metadata.provider"] == "openai"
    assert attrs["langfuse.environment"] == "prod" and attrs["langfuse.version"] == "1.2.0"
    assert attrs["langfuse.trace.tags"] == ["team:search"]
    assert attrs["user.id"] == "user-1" and attrs["session.id"] == "sess-1"
    assert "langfuse.trace.name" not in attrs  # not the root
    assert attrs["gen_ai.request.model"] == "gpt-4o" and attrs["gen_ai.usage.input_tokens"] == 12
    root = attributes(spans["answer question"])
    assert root["langfuse.trace.name"] == "answer question"
    assert json.loads(root["langfuse.trace.input"]) == "what is up?"
    assert root["langfuse.observation.type"] == "chain"


def test_otlp_error_and_minimal():
    [request] = build([error_span(), minimal_span()])
    spans = spans_of(decode_protobuf(request.body))
    attrs = attributes(spans[0])
    assert attrs["langfuse.observation.level"] == "ERROR"
    assert attrs["langfuse.observation.status_message"] == "tool timed out"
    assert spans[0].status.code == Status.STATUS_CODE_ERROR
    assert attributes(spans[1]) == {"langfuse.observation.type": "span"}


def test_api_url_overrides_host():
    [request] = build([minimal_span()], api_url="https://us.cloud.langfuse.com/")
    assert request.url == "https://us.cloud.langfuse.com/api/public/otel/v1/traces"


def test_otlp_split():
    assert [r.span_count for r in build([llm_span(id=f"s{i}") for i in range(1030)])] == [512, 512, 6]


# ---------------------------------------------------------------- ingestion API


def test_ingestion_events_validate_against_sdk_models():
    [request] = build([root_span(), llm_span(), error_span()], api="ingestion")
    assert request.url == "https://cloud.langfuse.com/api/public/ingestion"
    assert request.headers["authorization"] == BASIC
    assert request.headers["content-type"] == "application/json"
    assert request.span_count == 3
    batch = validated(request.body)
    assert [e["type"] for e in batch] == [
        "trace-create",
        "trace-create",
        "span-create",
        "generation-create",
        "span-create",
    ]
    trace = batch[0]["body"]
    assert trace == {
        "id": TRACE,
        "timestamp": "2026-01-02T03:04:05.000Z",
        "name": "answer question",
        "userId": "user-1",
        "sessionId": "sess-1",
        "input": "what is up?",
        "output": "not much",
        "tags": ["team:search"],
        "environment": "prod",
        "version": "1.2.0",
    }
    generation = batch[3]["body"]
    assert generation["id"] == otlp.span_id("span-llm-1").hex()
    assert generation["traceId"] == TRACE and generation["parentObservationId"] == ROOT
    assert generation["startTime"] == "2026-01-02T03:04:05.123Z"
    assert generation["endTime"] == "2026-01-02T03:04:06.500Z"
    assert generation["completionStartTime"] == "2026-01-02T03:04:05.373Z"
    assert generation["model"] == "gpt-4o"
    assert generation["modelParameters"] == {
        "temperature": 0.2,
        "max_tokens": 64,
        "stop": "END",
        "logit_bias": '{"1":2}',
    }
    assert generation["usageDetails"] == {"input": 12, "output": 3, "total": 15}
    assert generation["costDetails"] == {"total": 0.000075}
    assert generation["input"][1] == {"role": "user", "content": "hi"}
    assert generation["output"] == [{"role": "assistant", "content": "hello"}]
    assert generation["level"] == "DEFAULT"
    assert generation["metadata"]["provider"] == "openai" and generation["metadata"]["customer"] == "acme"
    assert generation["metadata"]["metrics"]["latency_ms"] == 1377
    assert generation["environment"] == "prod"
    assert batch[3]["metadata"] == {"span_id": "span-llm-1"}
    error = batch[4]["body"]
    assert error["level"] == "ERROR" and error["statusMessage"] == "tool timed out"
    assert batch[2]["body"]["id"] == ROOT and "parentObservationId" not in batch[2]["body"]


def test_ingestion_minimal_span_and_stable_ids():
    first = build([llm_span()], api="ingestion")[0].body
    assert first == build([llm_span()], api="ingestion")[0].body
    batch = validated(build([minimal_span()], api="ingestion")[0].body)
    assert [e["type"] for e in batch] == ["trace-create", "span-create"]
    assert batch[0]["body"] == {"id": otlp.trace_id("only-trace").hex()}
    assert batch[1]["body"] == {
        "id": otlp.span_id("only-id").hex(),
        "traceId": otlp.trace_id("only-trace").hex(),
        "level": "DEFAULT",
    }
    assert batch[1]["timestamp"].startswith("20")
    assert all(uuid.UUID(e["id"]).version == 5 for e in batch)


def test_ingestion_same_trace_in_two_batches_is_not_deduplicated():
    one = validated(build([llm_span(id="a")], api="ingestion")[0].body)[0]
    two = validated(build([llm_span(id="b")], api="ingestion")[0].body)[0]
    assert one["body"]["id"] == two["body"]["id"] and one["id"] != two["id"]


def test_ingestion_split_at_3_5_mb():
    spans = [llm_span(id=f"s{i}", response={"content": "x" * 400_000}) for i in range(20)]
    requests = build(spans, api="ingestion")
    assert len(requests) >= 3
    assert all(len(r.body) <= 3_500_000 for r in requests)
    assert sum(r.span_count for r in requests) == 20
    for r in requests:
        validated(r.body)


def _answer(status: int, payload: dict, request_body: bytes = b"") -> httpx.Response:
    request = httpx.Request("POST", "https://cloud.langfuse.com/api/public/ingestion", content=request_body)
    return httpx.Response(status, json=payload, request=request)


def test_classify_207_per_event_errors():
    [request] = build([root_span(), llm_span()], api="ingestion")
    batch = orjson.loads(request.body)["batch"]
    payload = {
        "successes": [{"id": batch[0]["id"], "status": 201}, {"id": batch[1]["id"], "status": 201}],
        "errors": [
            {"id": batch[2]["id"], "status": 400, "message": "Invalid request data", "error": "usage"}
        ],
    }
    IngestionResponse.parse_obj(payload)
    outcome = connector_for("langfuse").classify(_answer(207, payload, request.body))
    assert outcome.ok and outcome.status == 207
    assert outcome.item_errors == [
        {
            "span_id": "span-llm-1",
            "status": 400,
            "message": "Invalid request data",
            "event_id": batch[2]["id"],
        }
    ]
    clean = connector_for("langfuse").classify(_answer(207, {"successes": [], "errors": []}, request.body))
    assert clean.ok and clean.item_errors == []


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (403, False), (404, False), (429, True), (500, True)],
)
def test_classify_errors(status, retryable):
    outcome = connector_for("langfuse").classify(_answer(status, {"message": "no"}))
    assert not outcome.ok and outcome.retryable is retryable
