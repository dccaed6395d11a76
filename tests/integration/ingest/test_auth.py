"""Every ingest endpoint authenticates the key and writes only into the key's project."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.keys.models import ApiKey
from apps.traces.models import Span
from tests.factories import ApiKeyFactory, ProjectFactory
from tests.integration.ingest.helpers import auth, error_of, listed_ids, post, span
from tests.unit.ingest.recorder import Recorder

pytestmark = pytest.mark.django_db

PROTOBUF = "application/x-protobuf"


def _otlp_body() -> bytes:
    recorder = Recorder()
    with recorder.tracer.start_as_current_span("chat") as otel_span:
        otel_span.set_attribute("gen_ai.request.model", "gpt-4o")
    return recorder.protobuf()


# (path, body, content type, status when accepted)
ENDPOINTS = {
    "single": ("/v1/traces", b'{"id": "auth-1"}', "application/json", 202),
    "batch": ("/v1/traces/batch", b'{"traces": [{"id": "auth-1"}]}', "application/json", 202),
    "otlp": ("/otlp/v1/traces", None, PROTOBUF, 200),
}


@pytest.fixture(params=sorted(ENDPOINTS))
def endpoint(request):
    path, body, content_type, accepted = ENDPOINTS[request.param]
    return path, body if body is not None else _otlp_body(), content_type, accepted


def _send(client, endpoint, **headers):
    path, body, content_type, _ = endpoint
    return client.post(path, body, content_type=content_type, **headers)


def test_missing_key_is_401(client, endpoint):
    error = error_of(_send(client, endpoint), 401, "missing_key")
    assert error["message"] == "Missing API key: send X-Untrace-Key or Authorization: Bearer."
    assert not Span.objects.exists()


def test_auth_comes_before_body_checks(client, endpoint):
    path, _, _, _ = endpoint
    error_of(client.post(path, b"\x00garbage", content_type="text/plain"), 401, "missing_key")


@pytest.mark.parametrize(
    "raw",
    ["ut_" + "A" * 12 + "_" + "B" * 40, "nonsense", "Bearer", "ut_short"],
    ids=["well-formed", "a", "b", "c"],
)
def test_unknown_key_is_401(client, db, endpoint, raw):
    error = error_of(_send(client, endpoint, HTTP_X_UNTRACE_KEY=raw), 401, "invalid_key")
    assert error["message"] == "Invalid API key."


def test_wrong_secret_of_an_existing_key_is_401(client, api_key, endpoint):
    forged = api_key.secret[:-4] + ("AAAA" if not api_key.secret.endswith("AAAA") else "BBBB")
    error_of(_send(client, endpoint, HTTP_X_UNTRACE_KEY=forged), 401, "invalid_key")


def test_revoked_key_is_401(client, project, endpoint):
    revoked = ApiKeyFactory(project=project)
    ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    error = error_of(_send(client, endpoint, HTTP_X_UNTRACE_KEY=revoked.secret), 401, "revoked_key")
    assert error["message"] == "This API key was revoked."
    assert not Span.objects.exists()


def test_expired_key_is_401(client, project, endpoint):
    expired = ApiKeyFactory(project=project)
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    error_of(_send(client, endpoint, HTTP_X_UNTRACE_KEY=expired.secret), 401, "expired_key")


@pytest.mark.parametrize("scopes", [["read"], ["read", "write", "proxy"]])
def test_key_without_ingest_scope_is_403(client, project, endpoint, scopes):
    reader = ApiKeyFactory(project=project, scopes=scopes)
    error = error_of(_send(client, endpoint, HTTP_X_UNTRACE_KEY=reader.secret), 403, "missing_scope")
    assert error["message"] == "This API key lacks the 'ingest' scope."
    assert not Span.objects.exists()


def test_ingest_only_key_is_accepted(client, project, endpoint):
    writer = ApiKeyFactory(project=project, scopes=["ingest"])
    response = _send(client, endpoint, HTTP_X_UNTRACE_KEY=writer.secret)
    assert response.status_code == endpoint[3], response.content
    assert Span.objects.filter(project=project).count() == 1


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_bearer_authorization_is_accepted(client, api_key, endpoint, scheme):
    response = _send(client, endpoint, HTTP_AUTHORIZATION=f"{scheme} {api_key.secret}")
    assert response.status_code == endpoint[3], response.content
    assert Span.objects.filter(project=api_key.project).count() == 1


def test_a_key_writes_only_into_its_project(client, api_key, endpoint):
    other_project = ProjectFactory()
    other_key = ApiKeyFactory(project=other_project)

    response = _send(client, endpoint, HTTP_X_UNTRACE_KEY=api_key.secret)
    assert response.status_code == endpoint[3]
    (stored,) = Span.objects.all()
    assert stored.project_id == api_key.project_id

    assert listed_ids(client, api_key.secret) == [stored.span_id]
    assert listed_ids(client, other_key.secret) == []
    error = error_of(client.get(f"/v1/traces/{stored.trace_id}", **auth(other_key.secret)), 404, "not_found")
    assert error["message"] == f"No trace {stored.trace_id!r} in this project."
    assert client.get(f"/v1/traces/{stored.trace_id}", **auth(api_key.secret)).status_code == 200
    aggregate = client.get("/v1/traces/aggregate", **auth(other_key.secret)).json()
    assert aggregate["totals"]["count"] == 0


def test_the_same_span_id_in_two_projects_is_two_spans(client, api_key):
    other_key = ApiKeyFactory(project=ProjectFactory())
    assert post(client, "/v1/traces", span(id="shared", name="mine"), api_key.secret).status_code == 202
    assert post(client, "/v1/traces", span(id="shared", name="theirs"), other_key.secret).status_code == 202
    assert Span.objects.count() == 2
    assert [d["name"] for d in client.get("/v1/traces", **auth(api_key.secret)).json()["results"]] == ["mine"]
    assert [d["name"] for d in client.get("/v1/traces", **auth(other_key.secret)).json()["results"]] == [
        "theirs"
    ]
