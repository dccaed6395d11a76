"""The production ASGI application: ingest POSTs on the fast path, the rest through Django."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from apps.ingest.limits import span_limits
from apps.traces.models import Span
from untrace.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _request(method: str, path: str, **kwargs) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.request(method, path, **kwargs)

    # A fresh thread has no running event loop, whatever other tests left on this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_single_span_on_the_fast_path_is_stored(api_key):
    response = _request(
        "POST",
        "/v1/traces",
        content=orjson.dumps({"id": "fast-1", "model": "gpt-4o"}),
        headers={"Content-Type": "application/json", "X-Untrace-Key": api_key.secret},
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "ids": ["fast-1"]}
    assert response.headers["content-type"] == "application/json"
    assert Span.objects.for_project(api_key.project_id).get().model == "gpt-4o"


def test_get_goes_through_django(api_key):
    _request(
        "POST",
        "/v1/traces",
        content=orjson.dumps({"id": "fast-2"}),
        headers={"Content-Type": "application/json", "X-Untrace-Key": api_key.secret},
    )
    response = _request("GET", "/v1/traces", headers={"X-Untrace-Key": api_key.secret})
    assert response.status_code == 200
    assert [span["id"] for span in response.json()["results"]] == ["fast-2"]


def test_declared_oversize_body_is_413_before_reading(api_key, settings):
    settings.UNTRACE_MAX_BODY_BYTES = 100
    span_limits.cache_clear()
    try:
        response = _request(
            "POST",
            "/v1/traces/batch",
            content=b"x" * 101,
            headers={"Content-Type": "application/json", "X-Untrace-Key": api_key.secret},
        )
    finally:
        span_limits.cache_clear()
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_ip_allowlist_uses_the_asgi_client_address(project):
    from tests.factories import ApiKeyFactory

    allowed = ApiKeyFactory(project=project, allowed_cidrs=["203.0.113.0/24"])
    refused = ApiKeyFactory(project=project, allowed_cidrs=["198.51.100.0/24"])
    body = orjson.dumps({"id": "ip-1"})
    headers = {"Content-Type": "application/json"}
    ok = _request("POST", "/v1/traces", content=body, headers={**headers, "X-Untrace-Key": allowed.secret})
    assert ok.status_code == 202
    no = _request("POST", "/v1/traces", content=body, headers={**headers, "X-Untrace-Key": refused.secret})
    assert no.status_code == 403
    assert no.json()["error"]["code"] == "ip_not_allowed"


def test_other_methods_on_ingest_paths_get_the_envelope(api_key):
    response = _request("GET", "/v1/traces/batch", headers={"X-Untrace-Key": api_key.secret})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
