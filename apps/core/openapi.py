"""The error answers every API operation can give, added to the OpenAPI document.

Views document their successes and any error that needs its own words; this
drf-spectacular postprocessing hook adds the error envelope of
`apps.core.errors` for the answers common to all of them, so the document lists
every status a client can receive (the schemathesis run in the test suite holds
the API to it).
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = "Error"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_ERROR = {
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


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}},
    }


def _common_errors(path: str, operation: dict[str, Any], authenticated: bool) -> dict[str, dict[str, Any]]:
    errors = {}
    if operation.get("parameters") or operation.get("requestBody"):
        errors["400"] = _error("Bad input; `details.field` names the offending field")
    if authenticated:
        errors["401"] = _error("Missing, unknown, revoked or expired API key")
        errors["403"] = _error("The key lacks the scope this operation needs, or the IP is not allowed")
        errors["429"] = _error("Rate limit or plan quota exceeded; retry after `Retry-After` seconds")
    if "{" in path:
        errors["404"] = _error("No such object in the calling key's project")
    return errors


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault(ERROR_SCHEMA, _ERROR)
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
