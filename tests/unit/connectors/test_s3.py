"""S3 objects: keys, gzip JSONL bodies, SigV4 headers, splitting and S3 error answers."""

from __future__ import annotations

import gzip
import hashlib
import re
from typing import Any

import httpx
import orjson
import pytest

from apps.destinations.connectors import connector_for
from apps.destinations.connectors.s3 import S3Connector, parse_error, partition
from tests.unit.connectors import obs_samples as samples

SECRETS = {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "secret/example"}
AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/(\d{8})/eu-west-1/s3/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$"
)


def dest(**config: Any):
    return samples.destination(
        "s3", {"bucket": "acme-traces", "prefix": "untrace/", "region": "eu-west-1", **config}, SECRETS
    )


def lines_of(request) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in gzip.decompress(request.body).splitlines()]


def test_registered():
    assert isinstance(connector_for("s3"), S3Connector)


def test_put_to_virtual_hosted_url_with_partitioned_key():
    (request,) = S3Connector().build_requests(dest(), samples.trace(), message_id="msg_abc")
    assert request.method == "PUT"
    assert request.url == (
        "https://acme-traces.s3.eu-west-1.amazonaws.com/untrace/dt%3D2026-03-04/hour%3D05/msg_abc.jsonl.gz"
    )
    assert request.span_count == 3
    assert lines_of(request) == samples.trace()


def test_sigv4_headers():
    (request,) = S3Connector().build_requests(dest(), samples.trace(), message_id="m")
    headers = request.headers
    match = AUTH.match(headers["authorization"])
    assert match, headers["authorization"]
    assert match.group(1) == headers["x-amz-date"][:8]
    assert set(match.group(2).split(";")) == {"content-type", "host", "x-amz-content-sha256", "x-amz-date"}
    assert headers["x-amz-content-sha256"] == hashlib.sha256(request.body).hexdigest()
    assert headers["content-type"] == "application/gzip"
    assert "content-encoding" not in headers


def test_endpoint_forms():
    connector = S3Connector()
    assert (
        connector.endpoint(dest(endpoint_url="http://127.0.0.1:9000/")) == "http://127.0.0.1:9000/acme-traces"
    )
    assert connector.endpoint(dest(endpoint_url="http://minio:9000", api_url="http://proxy:8080")) == (
        "http://proxy:8080/acme-traces"
    )
    assert connector.endpoint(dest(bucket="acme.traces")) == "https://s3.eu-west-1.amazonaws.com/acme.traces"
    assert connector.endpoint(dest(region=None)) == "https://acme-traces.s3.us-east-1.amazonaws.com"


def test_prefix_gets_a_slash_and_may_be_empty():
    (request,) = S3Connector().build_requests(dest(prefix="lake"), [samples.llm()], message_id="m")
    assert "/lake/dt%3D2026-03-04/" in request.url
    (request,) = S3Connector().build_requests(dest(prefix=""), [samples.llm()], message_id="m")
    assert request.url.endswith(".amazonaws.com/dt%3D2026-03-04/hour%3D05/m.jsonl.gz")


def test_partition_uses_the_earliest_span_time():
    assert partition([samples.llm(start_time="2026-03-04T23:59:00+02:00"), samples.llm()]) == (
        "dt=2026-03-04/hour=05/"
    )
    assert partition([{"id": "x", "received_at": "2026-07-01T13:00:00Z"}]) == "dt=2026-07-01/hour=13/"
    assert re.fullmatch(r"dt=\d{4}-\d{2}-\d{2}/hour=\d{2}/", partition([samples.bare()]))


def test_error_span_and_bare_span_are_stored_whole():
    spans = [samples.failing_tool(), samples.bare()]
    (request,) = S3Connector().build_requests(dest(), spans, message_id="m")
    assert lines_of(request) == spans


def test_same_batch_same_object():
    first = S3Connector().build_requests(dest(), samples.trace(), message_id="m")
    again = S3Connector().build_requests(dest(), samples.trace(), message_id="m")
    assert [r.url for r in first] == [r.url for r in again]
    assert [r.body for r in first] == [r.body for r in again]


def test_split_into_numbered_objects(monkeypatch):
    spans = [samples.llm(id=f"s{i}") for i in range(5)]
    monkeypatch.setattr(S3Connector, "max_batch_spans", 2)
    requests = S3Connector().build_requests(dest(), spans, message_id="m")
    assert [r.span_count for r in requests] == [2, 2, 1]
    assert [r.url.rsplit("/", 1)[1] for r in requests] == ["m.jsonl.gz", "m-1.jsonl.gz", "m-2.jsonl.gz"]
    monkeypatch.setattr(S3Connector, "max_batch_spans", 10_000)
    monkeypatch.setattr(S3Connector, "max_request_bytes", 2500)
    requests = S3Connector().build_requests(dest(), spans, message_id="m")
    assert len(requests) > 1
    assert [line["id"] for r in requests for line in lines_of(r)] == [f"s{i}" for i in range(5)]


def s3_error(status: int, code: str, message: str = "x", headers: dict[str, str] | None = None):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>R</RequestId></Error>"
    )
    return httpx.Response(
        status, content=body.encode(), headers={"content-type": "application/xml", **(headers or {})}
    )


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (403, "SignatureDoesNotMatch", False),
        (403, "AccessDenied", False),
        (403, "InvalidAccessKeyId", False),
        (403, "RequestTimeTooSkewed", True),
        (404, "NoSuchBucket", False),
        (400, "InvalidBucketName", False),
        (400, "RequestTimeout", True),
        (409, "OperationAborted", True),
        (500, "InternalError", True),
        (503, "SlowDown", True),
        (503, "ServiceUnavailable", True),
    ],
)
def test_classify_errors(status, code, retryable):
    outcome = S3Connector().classify(s3_error(status, code, "Please reduce your request rate."))
    assert not outcome.ok
    assert (outcome.retryable, outcome.status) == (retryable, status)
    assert code in outcome.message and "Please reduce" in outcome.message


def test_classify_success_and_retry_after():
    assert S3Connector().classify(httpx.Response(200, headers={"etag": '"abc"'})).ok
    outcome = S3Connector().classify(s3_error(503, "SlowDown", headers={"retry-after": "2"}))
    assert outcome.retryable and outcome.retry_after == 2.0
    outcome = S3Connector().classify(httpx.Response(502, content=b"<html>bad gateway</html>"))
    assert outcome.retryable and outcome.message == "s3 answered 502"


def test_parse_error():
    assert parse_error("<Error><Code>SlowDown</Code><Message>m</Message></Error>") == ("SlowDown", "m")
    assert parse_error("not xml") == ("", "")
