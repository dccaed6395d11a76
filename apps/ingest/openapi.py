"""OpenAPI for the ingest endpoints, which are plain views outside DRF.

The span schema comes from the canonical msgspec Struct itself, so the document
cannot drift from what ingest validates. Registered as a drf-spectacular
postprocessing hook.
"""

from __future__ import annotations

from typing import Any

import msgspec

from apps.core.openapi import ERROR_COMPONENT, ERROR_SCHEMA, error_response
from apps.traces.schema import Span

_PREFIX = "Canonical"


def _to_openapi_30(node: Any) -> Any:
    """JSON Schema (msgspec) -> OpenAPI 3.0: nullable instead of type null, components refs."""
    if isinstance(node, list):
        return [_to_openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: _to_openapi_30(v) for k, v in node.items() if k not in ("title", "$defs")}
    if "$ref" in node:
        node["$ref"] = node["$ref"].replace("#/$defs/", f"#/components/schemas/{_PREFIX}")
    options = node.get("anyOf")
    if options and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        node.pop("anyOf")
        if len(rest) == 1 and "$ref" in rest[0]:
            node["allOf"] = rest
        elif len(rest) == 1:
            node.update(rest[0])
        else:
            node["anyOf"] = rest
        node["nullable"] = True
    if node.get("required") == []:
        node.pop("required")
    if node.get("default") is None and "default" in node:
        node.pop("default")
    properties = node.get("properties")
    if properties:
        properties.pop("__untrace_extra__", None)
        node["additionalProperties"] = True  # unknown fields are kept, never dropped
    return node


def _span_components() -> dict[str, Any]:
    raw = msgspec.json.schema(Span)
    return {f"{_PREFIX}{name}": _to_openapi_30(schema) for name, schema in raw["$defs"].items()}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"required": True, "description": description, "content": {"application/json": {"schema": schema}}}


def _responses(success: dict[str, Any]) -> dict[str, Any]:
    return {
        **success,
        "400": error_response("Invalid JSON (with position), or a span rejected with its field path"),
        "401": error_response("Missing or unknown key, or bad or stale signature"),
        "403": error_response("Key without the ingest scope"),
        "413": error_response("Body too large or more than the item limit"),
        "415": error_response("Unsupported Content-Type or Content-Encoding"),
        "429": error_response("Plan quota or rate limit exceeded; retry after Retry-After seconds"),
        "503": error_response("Trace store unavailable; retry after Retry-After seconds"),
    }


def add_ingest_endpoints(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_span_components())
    schemas.setdefault(ERROR_SCHEMA, ERROR_COMPONENT)
    schemas["BatchAccepted"] = {
        "type": "object",
        "properties": {
            "accepted": {"type": "array", "items": {"type": "string"}},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "message": {"type": "string"},
                        "field": {"type": "string"},
                    },
                },
            },
        },
    }
    batch = {
        "type": "object",
        "required": ["traces"],
        "properties": {"traces": {"type": "array", "maxItems": 1000, "items": _ref(f"{_PREFIX}Span")}},
    }
    batch_responses = _responses(
        {
            "202": {
                "description": "All accepted and stored",
                "content": {"application/json": {"schema": _ref("BatchAccepted")}},
            },
            "207": {
                "description": "Some accepted and stored, some rejected",
                "content": {"application/json": {"schema": _ref("BatchAccepted")}},
            },
        }
    )
    paths = result.setdefault("paths", {})
    paths.setdefault("/v1/traces", {})["post"] = {
        "operationId": "traces_ingest",
        "tags": ["ingest"],
        "summary": "Send one span",
        "requestBody": _json_body(_ref(f"{_PREFIX}Span"), "A canonical span; gzip Content-Encoding allowed"),
        "responses": _responses(
            {
                "202": {
                    "description": "Stored",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "accepted": {"type": "integer"},
                                    "ids": {"type": "array", "items": {"type": "string"}},
                                },
                            }
                        }
                    },
                }
            }
        ),
    }
    paths["/v1/traces/batch"] = {
        "post": {
            "operationId": "traces_ingest_batch",
            "tags": ["ingest"],
            "summary": "Send up to 1000 spans",
            "requestBody": _json_body(batch, "Spans; gzip Content-Encoding allowed"),
            "responses": batch_responses,
        }
    }
    paths["/v1/webhooks/{endpoint_id}"] = {
        "post": {
            "operationId": "webhooks_ingest",
            "tags": ["ingest"],
            "summary": "Send spans signed per Standard Webhooks (no API key)",
            "security": [],
            "parameters": [
                {
                    "name": "endpoint_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                },
                *(
                    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
                    for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
                ),
            ],
            "requestBody": _json_body(batch, "Same body as /v1/traces/batch"),
            "responses": batch_responses,
        }
    }
    otlp_body = {
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object", "additionalProperties": True}},
    }
    paths["/otlp/v1/traces"] = {
        "post": {
            "operationId": "otlp_traces",
            "tags": ["ingest"],
            "summary": "OTLP/HTTP trace export (protobuf or JSON, gzip allowed)",
            "requestBody": {"required": True, "content": otlp_body},
            "responses": _responses(
                {
                    "200": {
                        "description": "ExportTraceServiceResponse, with partial_success "
                        "when spans were rejected",
                        "content": otlp_body,
                    }
                }
            ),
        }
    }
    return result
