"""What the OpenAPI document needs beyond what drf-spectacular finds in the views.

`add_plain_routes` documents the routes that are not DRF views (health, readiness,
metrics, the Stripe webhook, and the proxy, which is served by the ASGI app before
Django), so every public route is in the document (a test compares it with the URL
conf). `add_error_responses` adds the error envelope of `apps.core.errors` for the
answers common to every operation, so the document lists every status a client can
receive (the schemathesis run in the test suite holds the API to it).
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = "Error"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ERROR_COMPONENT = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object", "nullable": True, "additionalProperties": True},
            },
        }
    },
}


def error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}},
    }


def _common_errors(path: str, operation: dict[str, Any], authenticated: bool) -> dict[str, dict[str, Any]]:
    errors = {}
    if operation.get("parameters") or operation.get("requestBody"):
        errors["400"] = error_response("Bad input; `details.field` names the offending field")
    if authenticated:
        errors["401"] = error_response("Missing, unknown, revoked or expired API key")
        errors["403"] = error_response(
            "The key lacks the scope this operation needs, or the IP is not allowed"
        )
        errors["429"] = error_response("Rate limit or plan quota exceeded; retry after `Retry-After` seconds")
    if "{" in path:
        errors["404"] = error_response("No such object in the calling key's project")
    return errors


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault(ERROR_SCHEMA, ERROR_COMPONENT)
    default_security = result.get("security")
    for path, item in result.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            security = operation.get("security", default_security)
            authenticated = bool(security) and security != [{}]
            responses = operation["responses"] = dict(operation.get("responses", {}))  # may be shared
            for status, response in _common_errors(path, operation, authenticated).items():
                responses.setdefault(status, response)
    return result


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


_STRING = {"type": "string"}
_KEY_SECURITY = [{"ApiKeyHeader": []}]


def _proxy(provider: str) -> dict[str, Any]:
    passthrough = {
        "description": f"The {provider} API's answer, status, headers and body unchanged (SSE streams "
        "are relayed as they arrive); `X-Untrace-Trace-Id` names the trace recorded",
        "content": {"*/*": {"schema": {}}},
    }
    operation = {
        "tags": ["proxy"],
        "security": _KEY_SECURITY,
        "parameters": [
            {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
            *(
                {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
                for name in (
                    "X-Untrace-Session-Id",
                    "X-Untrace-User-Id",
                    "X-Untrace-Tags",
                    "X-Untrace-Metadata",
                    "traceparent",
                )
            ),
        ],
        "responses": {
            "default": passthrough,
            "413": error_response("Request body larger than the proxy accepts"),
            "502": error_response(
                "The upstream is unreachable, refused by the outbound address policy, or broke off"
            ),
            "503": error_response("The API key could not be checked"),
            "504": error_response("The upstream timed out"),
        },
    }
    summary = f"Call the {provider} API through Untrace (every method; traced and routed)"
    return {
        method: {**operation, "operationId": f"proxy_{provider.lower()}_{method}", "summary": summary}
        for method in ("get", "post", "put", "patch", "delete")
    }


def add_plain_routes(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    paths = result.setdefault("paths", {})
    paths["/health"] = {
        "get": {
            "operationId": "health",
            "tags": ["operations"],
            "summary": "Liveness: the process answers",
            "security": [],
            "responses": {"200": _json("Alive", _object(status=_STRING))},
        }
    }
    readiness = _object(
        status={"type": "string", "enum": ["ok", "unavailable"]},
        checks={"type": "object", "additionalProperties": {"type": "string", "enum": ["ok", "down"]}},
        errors={"type": "object", "additionalProperties": _STRING},
    )
    paths["/ready"] = {
        "get": {
            "operationId": "ready",
            "tags": ["operations"],
            "summary": "Readiness: PostgreSQL and the broker answer",
            "security": [],
            "responses": {"200": _json("Ready", readiness), "503": _json("A dependency is down", readiness)},
        }
    }
    paths["/metrics"] = {
        "get": {
            "operationId": "metrics",
            "tags": ["operations"],
            "summary": "Prometheus metrics (Authorization: Bearer UNTRACE_METRICS_TOKEN when it is set)",
            "security": [],
            "responses": {
                "200": {
                    "description": "Prometheus text exposition",
                    "content": {"text/plain": {"schema": _STRING}},
                },
                "401": error_response("Bad metrics token"),
            },
        }
    }
    paths["/billing/stripe/webhook"] = {
        "post": {
            "operationId": "stripe_webhook",
            "tags": ["billing"],
            "summary": "Stripe's events (signed with STRIPE_WEBHOOK_SECRET)",
            "security": [],
            "parameters": [{"name": "Stripe-Signature", "in": "header", "required": True, "schema": _STRING}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
            },
            "responses": {
                "200": _json(
                    "Applied, or already applied", _object(received={"type": "boolean"}, outcome=_STRING)
                ),
                "400": error_response("Bad or stale signature, or not a Stripe event"),
                "429": error_response("Too many requests from this address"),
                "501": error_response("Billing is not enabled on this installation"),
            },
        }
    }
    paths["/v1/proxy/openai/{path}"] = _proxy("OpenAI")
    paths["/v1/proxy/anthropic/{path}"] = _proxy("Anthropic")
    return result
