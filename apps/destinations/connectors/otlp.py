"""Any OpenTelemetry collector or backend over OTLP/HTTP, with the GenAI semantic conventions.

`POST {endpoint}/v1/traces` (the endpoint may already be the traces URL) with an `ExportTraceServiceRequest`
as `application/x-protobuf` (default) or OTLP/JSON (`protocol: http/json`). The `headers` setting (a secret:
it usually carries the backend's API key) is sent as given. A 200 may carry `partial_success` with the
number of rejected spans, reported as `item_errors`. Per the OTLP specification only 429, 502, 503 and 504
are retried (honouring Retry-After); any other 4xx or 5xx is final.

Limits: 512 spans per request (the OTel SDK's batch default) and 4 MiB per body (the collector's default
receive limit).
"""

from __future__ import annotations

from typing import Any

import httpx

from apps.destinations.connectors import otlp_encoding as otlp
from apps.destinations.connectors.base import Connector, Field, Outcome
from apps.destinations.models import Destination


class OtlpConnector(otlp.OtlpExport, Connector):
    type = "otlp"
    label = "OpenTelemetry collector (OTLP/HTTP)"
    fields = (
        Field("endpoint", "url", required=True, help="Collector base URL; /v1/traces is added"),
        Field("headers", "headers", secret=True),
        Field("protocol", "choice", default="http/protobuf", choices=("http/protobuf", "http/json")),
    )
    max_batch_spans = 512
    max_request_bytes = 4 * 1024 * 1024
    styles = (otlp.GENAI,)

    def endpoint(self, destination: Destination) -> str:
        return destination.config.get("api_url") or destination.config["endpoint"]

    def content_type(self, destination: Destination) -> str:
        return otlp.JSON if destination.config.get("protocol") == "http/json" else otlp.PROTOBUF

    def export_headers(self, destination: Destination) -> dict[str, Any]:
        return {str(k): str(v) for k, v in (destination.secrets.get("headers") or {}).items()}

    def classify(self, response: httpx.Response) -> Outcome:
        outcome = super().classify(response)
        if not outcome.ok and outcome.status is not None:
            outcome = Outcome(
                ok=False,
                retryable=outcome.status in otlp.OTLP_RETRYABLE,
                status=outcome.status,
                message=outcome.message,
                body=outcome.body,
                retry_after=outcome.retry_after,
            )
        return outcome
