import uuid

import pytest

from apps.destinations.models import Destination
from tests.factories import ApiKeyFactory, DestinationFactory
from tests.integration.routing.conftest import error

pytestmark = pytest.mark.django_db

LANGFUSE = {
    "name": "langfuse eu",
    "type": "langfuse",
    "config": {"host": "https://cloud.langfuse.com", "public_key": "pk-lf-1", "secret_key": "sk-lf-secret"},
}


def test_create_keeps_credentials_encrypted_and_write_only(api, project):
    response = api.post("/v1/destinations", LANGFUSE, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["config"] == {"host": "https://cloud.langfuse.com", "public_key": "pk-lf-1", "api": "otlp"}
    assert body["secrets_set"] == ["secret_key"]
    assert "sk-lf-secret" not in response.content.decode()
    stored = Destination.objects.get(pk=body["id"])
    assert "sk-lf-secret" not in stored.secrets_encrypted and stored.secrets == {"secret_key": "sk-lf-secret"}
    assert "sk-lf-secret" not in api.get(f"/v1/destinations/{body['id']}").content.decode()
    assert [d["id"] for d in api.get("/v1/destinations").json()["results"]] == [body["id"]]


def test_two_destinations_of_the_same_type(api):
    for name in ("langfuse a", "langfuse b"):
        assert api.post("/v1/destinations", {**LANGFUSE, "name": name}, format="json").status_code == 201
    assert error(
        api.post("/v1/destinations", {**LANGFUSE, "name": "langfuse a"}, format="json"), 409, "conflict"
    )


def test_update_merges_config_and_replaces_secrets(api):
    created = api.post("/v1/destinations", LANGFUSE, format="json").json()
    response = api.patch(
        f"/v1/destinations/{created['id']}",
        {"config": {"secret_key": "new", "api": "ingestion"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["config"]["api"] == "ingestion"
    assert Destination.objects.get(pk=created["id"]).secrets == {"secret_key": "new"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**LANGFUSE, "type": "splunk"}, "type", "not a valid choice"),
        ({**LANGFUSE, "config": {"public_key": "pk"}}, "config.secret_key", "is required for langfuse"),
        (
            {**LANGFUSE, "config": {**LANGFUSE["config"], "region": "eu"}},
            "config.region",
            "not a setting of langfuse",
        ),
        (
            {**LANGFUSE, "config": {**LANGFUSE["config"], "host": "ftp://x"}},
            "config.host",
            "http:// or https://",
        ),
        (
            {**LANGFUSE, "config": {**LANGFUSE["config"], "api": "grpc"}},
            "config.api",
            "must be one of otlp, ingestion",
        ),
        (
            {**LANGFUSE, "config": {**LANGFUSE["config"], "public_key": 7}},
            "config.public_key",
            "non-empty string",
        ),
        (
            {"name": "x", "type": "otlp", "config": {"endpoint": "https://c", "headers": {"a": "b\nc"}}},
            "config.headers.a",
            "single-line",
        ),
        ({"name": "", "type": "webhook", "config": {"url": "https://x"}}, "name", ""),
        ({"name": "x", "type": "webhook"}, "config", "required"),
    ],
)
def test_bad_destinations_are_refused_naming_the_field(api, body, field, message):
    body_error = error(api.post("/v1/destinations", body, format="json"), 400)
    assert body_error["details"]["field"] == field
    assert message in body_error["message"]


def test_private_addresses_are_refused_unless_allowed(api, settings):
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = False
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/",
        "http://localhost/",
    ):
        body = error(
            api.post(
                "/v1/destinations", {"name": url, "type": "webhook", "config": {"url": url}}, format="json"
            ),
            400,
        )
        assert body["details"]["field"] == "config.url"
    assert (
        api.post(
            "/v1/destinations",
            {"name": "public", "type": "webhook", "config": {"url": "https://8.8.8.8/h"}},
            format="json",
        ).status_code
        == 201
    )


def test_another_projects_destination_is_not_found(api):
    other = DestinationFactory()
    for response in (
        api.get(f"/v1/destinations/{other.pk}"),
        api.patch(f"/v1/destinations/{other.pk}", {"enabled": False}, format="json"),
        api.delete(f"/v1/destinations/{other.pk}"),
    ):
        error(response, 404, "not_found")
    assert Destination.objects.filter(pk=other.pk, enabled=True).exists()
    error(api.get(f"/v1/destinations/{uuid.uuid4()}"), 404, "not_found")
    error(api.get("/v1/destinations/nope"), 400)


def test_scopes(project):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_UNTRACE_KEY=ApiKeyFactory(project=project, scopes=["read"]).secret)
    assert client.get("/v1/destinations").status_code == 200
    error(client.post("/v1/destinations", LANGFUSE, format="json"), 403, "missing_scope")
    error(APIClient().get("/v1/destinations"), 401, "unauthenticated")


def test_a_destination_used_by_routing_cannot_be_deleted(api, destinations):
    used, unused = destinations
    rule = {"name": "all", "conditions": {}, "actions": {"destinations": [str(used.pk)]}}
    assert api.post("/v1/routing/rules", rule, format="json").status_code == 201
    body = error(api.delete(f"/v1/destinations/{used.pk}"), 409, "destination_in_use")
    assert body["details"] == {"used_by": ["all"]}
    assert api.delete(f"/v1/destinations/{unused.pk}").status_code == 204
