"""Helpers shared by the ingest and query API integration tests."""

from __future__ import annotations

import gzip
import itertools
import json
from typing import Any

JSON = "application/json"
_ids = itertools.count(1)


def new_id(prefix: str = "span") -> str:
    return f"{prefix}-{next(_ids)}"


def span(**fields: Any) -> dict[str, Any]:
    """A minimal valid canonical span with a fresh id, plus `fields`."""
    return {"id": new_id(), **fields}


def encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def gzipped(body: Any) -> bytes:
    return gzip.compress(encode(body))


def auth(key: str | None) -> dict[str, str]:
    return {"HTTP_X_UNTRACE_KEY": key} if key is not None else {}


def post(client, path: str, body: Any, key: str | None, *, content_type: str = JSON, **extra: str):
    return client.post(path, encode(body), content_type=content_type, **auth(key), **extra)


def error_of(response, status: int, code: str) -> dict[str, Any]:
    """The error object of an envelope response, after checking status, shape and code."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(JSON)
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    return body["error"]


def listed(client, key: str, **params: Any) -> list[dict[str, Any]]:
    """GET /v1/traces (first page) -> the results."""
    response = client.get("/v1/traces", params, **auth(key))
    assert response.status_code == 200, response.content
    return response.json()["results"]


def listed_ids(client, key: str, **params: Any) -> list[str]:
    return [doc["id"] for doc in listed(client, key, **params)]
