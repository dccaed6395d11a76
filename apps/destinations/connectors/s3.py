"""Amazon S3 or S3-compatible storage: one gzip-compressed JSONL object per batch.

Each line of an object is one canonical span as JSON. Objects are keyed
`{prefix}dt=YYYY-MM-DD/hour=HH/{message_id}.jsonl.gz` (a batch split into several
objects adds `-1`, `-2`, ... to the later ones). The message id is the same for every
attempt of a delivery, so a re-sent batch overwrites its own object instead of adding
a duplicate. The date and hour are those of the earliest span start in the batch (UTC;
falling back to the receive time), so the key does not depend on when it is sent.
A prefix without a trailing `/` gets one.

The request is a `PUT` signed with AWS Signature Version 4 by botocore's S3 signer,
with the SHA-256 of the body in `x-amz-content-sha256` so S3 checks the payload. The
object is stored as gzip bytes with `content-type: application/gzip` and no
`content-encoding`: the `.jsonl.gz` name tells data tools (Athena, Spark, DuckDB) to
decompress, and HTTP clients do not silently unpack it on download.

URL: `https://{bucket}.s3.{region}.amazonaws.com/{key}` (virtual-hosted); a bucket with
dots uses the path style on `s3.{region}.amazonaws.com`, since its name breaks the
wildcard certificate. With `endpoint_url` (or `api_url`, which wins) the URL is
path-style, `{endpoint}/{bucket}/{key}`, as S3-compatible servers expect.

Answers: S3's errors are XML `<Error><Code>..</Code><Message>..</Message></Error>`.
5xx (SlowDown, InternalError, ServiceUnavailable), 408/429, `RequestTimeout` (a 400),
`OperationAborted` (409) and `RequestTimeTooSkewed` (a 403; the next attempt signs
anew) are retryable; `AccessDenied`, `SignatureDoesNotMatch`, `InvalidAccessKeyId`,
`NoSuchBucket` and other 4xx are permanent.

Limits: a single PUT takes up to 5 GB; batches are kept to 10,000 spans and 64 MiB of
JSON before compression, so a worker's memory stays bounded.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import httpx
import orjson
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from apps.destinations.connectors.base import MAX_ERROR_BODY, Connector, Field, HttpRequest, Outcome
from apps.destinations.models import Destination

RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "OperationAborted",
    }
)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def partition(spans: list[dict[str, Any]]) -> str:
    """`dt=YYYY-MM-DD/hour=HH/` of the earliest span in the batch."""
    moments = [m for span in spans if (m := _moment(span.get("start_time")))]
    moments = moments or [m for span in spans if (m := _moment(span.get("received_at")))]
    moment = min(moments) if moments else datetime.now(UTC)
    return f"dt={moment:%Y-%m-%d}/hour={moment:%H}/"


def parse_error(body: str) -> tuple[str, str]:
    """(Code, Message) of an S3 error document, empty when it is not one."""
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 (a small error document of the configured endpoint)
    except ElementTree.ParseError:
        return "", ""
    return (root.findtext("Code") or "", root.findtext("Message") or "")


class S3Connector(Connector):
    type = "s3"
    label = "Amazon S3 or S3-compatible storage"
    fields = (
        Field("bucket", required=True),
        Field("prefix", default="untrace/"),
        Field("region", default="us-east-1"),
        Field("endpoint_url", "url", help="For S3-compatible storage (MinIO, R2, ...)"),
        Field("access_key_id", required=True, secret=True),
        Field("secret_access_key", required=True, secret=True),
    )
    max_batch_spans = 10_000
    max_request_bytes = 64 * 1024 * 1024

    def endpoint(self, destination: Destination) -> str:
        config = destination.config
        custom = config.get("api_url") or config.get("endpoint_url")
        if custom:
            return f"{custom.rstrip('/')}/{config['bucket']}"
        bucket, region = config["bucket"], config.get("region") or "us-east-1"
        if "." in bucket:
            return f"https://s3.{region}.amazonaws.com/{bucket}"
        return f"https://{bucket}.s3.{region}.amazonaws.com"

    def key(self, destination: Destination, spans: list[dict[str, Any]], name: str) -> str:
        prefix = destination.config.get("prefix") or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return f"{prefix}{partition(spans)}{name}.jsonl.gz"

    def _chunks(self, spans: list[dict[str, Any]]) -> list[tuple[bytes, int]]:
        """JSONL documents under the span and size limits, in order."""
        chunks: list[tuple[bytes, int]] = []
        lines: list[bytes] = []
        size = 0
        for span in spans:
            line = orjson.dumps(span, default=str) + b"\n"
            if lines and (size + len(line) > self.max_request_bytes or len(lines) >= self.max_batch_spans):
                chunks.append((b"".join(lines), len(lines)))
                lines, size = [], 0
            lines.append(line)
            size += len(line)
        if lines:
            chunks.append((b"".join(lines), len(lines)))
        return chunks

    def build_requests(
        self, destination: Destination, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        secrets = destination.secrets
        credentials = Credentials(
            str(secrets.get("access_key_id") or ""), str(secrets.get("secret_access_key") or "")
        )
        signer = S3SigV4Auth(credentials, "s3", destination.config.get("region") or "us-east-1")
        base = self.endpoint(destination)
        requests = []
        for index, (document, count) in enumerate(self._chunks(spans)):
            name = message_id if index == 0 else f"{message_id}-{index}"
            key = self.key(destination, spans, name)
            body = gzip.compress(document, mtime=0)
            request = AWSRequest(
                method="PUT",
                url=f"{base}/{quote(key, safe='/~')}",
                data=body,
                headers={"content-type": "application/gzip", "user-agent": "untrace-s3/1"},
            )
            signer.add_auth(request)
            headers = {name.lower(): value for name, value in request.headers.items()}
            requests.append(HttpRequest("PUT", request.url, headers, body, count))
        return requests

    def classify(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        body = response.text[:MAX_ERROR_BODY]
        if 200 <= status < 300:
            return Outcome(ok=True, status=status, body=body)
        outcome = super().classify(response)
        code, message = parse_error(response.text)
        retryable = outcome.retryable or code in RETRYABLE_CODES
        if code in ("AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId"):
            retryable = False
        detail = f" {code}: {message}" if code else ""
        return Outcome(
            ok=False,
            retryable=retryable,
            status=status,
            message=f"s3 answered {status}{detail}"[:MAX_ERROR_BODY],
            body=body,
            retry_after=outcome.retry_after,
        )
