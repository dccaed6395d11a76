import uuid

import pytest
from rest_framework.test import APIClient

from apps.keys.auth import authenticate_key
from apps.keys.models import ApiKey
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    return body["error"]


def _client(secret: str | None = None, header: str = "X-Untrace-Key") -> APIClient:
    client = APIClient()
    if secret is not None:
        if header == "Authorization":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        else:
            client.credentials(HTTP_X_UNTRACE_KEY=secret)
    return client


def test_create_shows_the_secret_once_and_it_works(api):
    response = api.post("/v1/keys", {"name": "backend", "scopes": ["ingest", "read"]}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["secret"].startswith("ut_")
    assert body["scopes"] == ["ingest", "read"]
    assert body["status"] == "active"
    assert authenticate_key(body["secret"]).key_id == uuid.UUID(body["id"])

    listed = api.get("/v1/keys").json()
    assert {k["id"] for k in listed["results"]} >= {body["id"]}
    assert all("secret" not in k for k in listed["results"])
    assert "secret" not in api.get(f"/v1/keys/{body['id']}").json()


def test_bearer_header_works_too(api_key):
    response = _client(api_key.secret, header="Authorization").get("/v1/keys")
    assert response.status_code == 200


def test_revoke_then_the_key_is_refused(api, project):
    other = ApiKeyFactory(project=project)
    response = api.post(f"/v1/keys/{other.pk}/revoke")
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    error = _error(_client(other.secret).get("/v1/keys"), 401, "revoked_key")
    assert error["message"] == "This API key was revoked."


def test_rotate_returns_a_new_secret_and_keeps_the_old_for_the_grace(api, project):
    old = ApiKeyFactory(project=project, scopes=["ingest"])
    response = api.post(f"/v1/keys/{old.pk}/rotate", {"grace_seconds": 600}, format="json")
    assert response.status_code == 201
    new = response.json()
    assert new["rotated_from"] == str(old.pk)
    assert new["secret"] != old.secret
    assert authenticate_key(old.secret).key_id == old.pk
    again = api.post(f"/v1/keys/{old.pk}/rotate", {}, format="json")
    _error(again, 400, "invalid_request")


def test_missing_key_is_401(db):
    error = _error(_client().get("/v1/keys"), 401, "unauthenticated")
    assert "X-Untrace-Key" in error["message"]


def test_unknown_key_is_401(db):
    _error(_client("ut_" + "A" * 12 + "_" + "B" * 40).get("/v1/keys"), 401, "invalid_key")


def test_missing_scope_is_403(project):
    ingest_only = ApiKeyFactory(project=project, scopes=["ingest"])
    error = _error(_client(ingest_only.secret).get("/v1/keys"), 403, "missing_scope")
    assert "'read'" in error["message"]
    read_only = ApiKeyFactory(project=project, scopes=["read"])
    _error(_client(read_only.secret).post("/v1/keys", {"name": "x"}, format="json"), 403, "missing_scope")


def test_a_key_cannot_grant_scopes_it_lacks(project):
    writer = ApiKeyFactory(project=project, scopes=["read", "write"])
    response = _client(writer.secret).post("/v1/keys", {"name": "x", "scopes": ["proxy"]}, format="json")
    error = _error(response, 403, "scope_escalation")
    assert error["details"] == {"field": "scopes"}


def test_another_tenants_key_id_is_404(api):
    stranger = ApiKeyFactory()  # in another organization's project
    _error(api.get(f"/v1/keys/{stranger.pk}"), 404, "not_found")
    _error(api.post(f"/v1/keys/{stranger.pk}/revoke"), 404, "not_found")
    _error(api.post(f"/v1/keys/{stranger.pk}/rotate", {}, format="json"), 404, "not_found")
    assert ApiKey.objects.get(pk=stranger.pk).revoked_at is None
    assert str(stranger.pk) not in api.get("/v1/keys").content.decode()


def test_malformed_id_is_400_naming_the_field(api):
    error = _error(api.get("/v1/keys/not-a-uuid"), 400, "invalid_request")
    assert error["details"] == {"field": "id"}
    assert error["message"].startswith("id: ")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "name", "name: This field is required."),
        ({"name": 42}, "name", "name: Must be a string."),
        ({"name": "x" * 201}, "name", "name: Ensure this field has no more than 200 characters."),
        ({"name": "k", "scopes": ["admin"]}, "scopes[0]", 'scopes[0]: "admin" is not a valid choice.'),
        ({"name": "k", "scopes": []}, "scopes", "scopes: Ensure this field has at least 1 elements."),
        ({"name": "k", "scopes": "read"}, "scopes", 'scopes: Expected a list of items but got type "str".'),
        ({"name": "k", "expires_at": "tomorrow"}, "expires_at", None),
        (
            {"name": "k", "expires_at": "2001-01-01T00:00:00Z"},
            "expires_at",
            "expires_at: must be in the future",
        ),
        ({"name": "k", "allowed_cidrs": ["10.0.0.0/33"]}, "allowed_cidrs[0]", None),
        ({"name": "k", "allowed_cidrs": [7]}, "allowed_cidrs", None),
    ],
)
def test_bad_create_bodies_are_400_naming_the_field(api, body, field, message):
    error = _error(api.post("/v1/keys", body, format="json"), 400, "invalid_request")
    assert error["details"]["field"].startswith(field)
    if message:
        assert error["message"] == message


def test_rotate_grace_must_be_an_integer_in_range(api, api_key):
    for grace in ("60", -1, 10**9, True):
        response = api.post(f"/v1/keys/{api_key.pk}/rotate", {"grace_seconds": grace}, format="json")
        assert _error(response, 400, "invalid_request")["details"]["field"] == "grace_seconds"


def test_invalid_json_is_400(api):
    response = api.generic("POST", "/v1/keys", b'{"name": ', content_type="application/json")
    error = _error(response, 400, "invalid_json")
    assert "JSON parse error" in error["message"]


def test_non_object_body_is_400(api):
    response = api.post("/v1/keys", [1, 2], format="json")
    _error(response, 400, "invalid_request")


def test_unknown_content_type_is_415(api):
    response = api.generic("POST", "/v1/keys", b"name=x", content_type="text/plain")
    _error(response, 415, "unsupported_media_type")


def test_unknown_api_path_is_json_404(api):
    _error(api.get("/v1/nothing-here"), 404, "not_found")


def test_method_not_allowed_uses_the_envelope(api, api_key):
    _error(api.delete(f"/v1/keys/{api_key.pk}"), 405, "method_not_allowed")
