"""Arize Phoenix: OTLP/HTTP with the OpenInference conventions.

Phoenix takes `POST {endpoint}/v1/traces` as `application/x-protobuf` only (any other content type,
JSON included, gets 415) and reads OpenInference attributes (openinference.span.kind, llm.*,
input/output.value).
The project is the resource attribute `openinference.project.name` (Phoenix uses "default" without it).
With authentication enabled it wants `Authorization: Bearer <API key>`. Answers: 200 with a protobuf
`ExportTraceServiceResponse` (spans are inserted asynchronously), 422 for an undecodable body, 503 when its
span queue is full (retried).

Limits: Phoenix documents none; 512 spans and 4 MiB per request keep to the OTLP exporter defaults.
"""

from __future__ import annotations

from typing import Any

from apps.destinations.connectors import otlp_encoding as otlp
from apps.destinations.connectors.base import Connector, Field, api_key
from apps.destinations.models import Destination


class PhoenixConnector(otlp.OtlpExport, Connector):
    type = "phoenix"
    label = "Arize Phoenix"
    fields = (
        Field("endpoint", "url", required=True, help="OTLP/HTTP base, e.g. http://phoenix:6006"),
        api_key(required=False),
        Field("project"),
    )
    max_batch_spans = 512
    max_request_bytes = 4 * 1024 * 1024
    styles = (otlp.OPENINFERENCE,)
    user_agent = "untrace-phoenix/1"

    def endpoint(self, destination: Destination) -> str:
        return destination.config.get("api_url") or destination.config["endpoint"]

    def export_headers(self, destination: Destination) -> dict[str, str]:
        key = destination.secrets.get("api_key")
        return {"authorization": f"Bearer {key}"} if key else {}

    def resource_attributes(self, destination: Destination) -> dict[str, Any]:
        attributes = super().resource_attributes(destination)
        if destination.config.get("project"):
            attributes["openinference.project.name"] = destination.config["project"]
        return attributes
