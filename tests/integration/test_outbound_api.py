"""Outbound URLs refused through the API: destinations, their test send, proxy settings."""

from __future__ import annotations

import pytest

from apps.destinations.models import Destination
from apps.proxy.models import ProxySettings
from tests.factories import DestinationFactory
from tests.fakes.sink import running_sink
from tests.unit.test_outbound import HINT, fake_dns

pytestmark = pytest.mark.django_db


@pytest.fixture
def refused(settings):
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = False


def invalid(field: str, message: str) -> dict:
    return {
        "error": {"code": "invalid_request", "message": f"{field}: {message}", "details": {"field": field}}
    }


METADATA = f"resolves to 169.254.169.254, a link-local address {HINT}"


def test_creating_a_webhook_to_the_metadata_address_is_refused(api, refused):
    body = {"name": "hook", "type": "webhook", "config": {"url": "http://169.254.169.254/"}}
    response = api.post("/v1/destinations", body, format="json")
    assert response.status_code == 400
    assert response.json() == invalid("config.url", METADATA)
    assert not Destination.objects.exists()


def test_changing_a_webhook_to_the_metadata_address_is_refused(api, project, refused):
    destination = DestinationFactory(project=project, config={"url": "https://8.8.8.8/hook"})
    response = api.patch(
        f"/v1/destinations/{destination.pk}", {"config": {"url": "http://169.254.169.254/"}}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == invalid("config.url", METADATA)
    destination.refresh_from_db()
    assert destination.config["url"] == "https://8.8.8.8/hook"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"name": "otlp", "type": "otlp", "config": {"endpoint": "http://[::ffff:127.0.0.1]:4318"}},
            "config.endpoint",
            f"resolves to ::ffff:127.0.0.1, the IPv4-mapped form of 127.0.0.1, a loopback address {HINT}",
        ),
        (
            {
                "name": "lf",
                "type": "langfuse",
                "config": {"host": "http://2130706433/", "public_key": "pk", "secret_key": "sk"},
            },
            "config.host",
            f"resolves to 127.0.0.1, a loopback address {HINT}",
        ),
        (
            {
                "name": "dd",
                "type": "datadog",
                "config": {"api_key": "k", "ml_app": "a", "api_url": "http://100.64.1.1"},
            },
            "config.api_url",
            f"resolves to 100.64.1.1, a carrier-grade NAT address {HINT}",
        ),
        (
            {"name": "hook", "type": "webhook", "config": {"url": "https://hooks.internal.example/h"}},
            "config.url",
            f"resolves to 10.20.30.40, a private address {HINT}",
        ),
    ],
)
def test_every_url_setting_of_every_type_is_checked(api, refused, monkeypatch, body, field, message):
    fake_dns(monkeypatch, {"hooks.internal.example": ["10.20.30.40"]})
    response = api.post("/v1/destinations", body, format="json")
    assert response.status_code == 400
    assert response.json() == invalid(field, message)


def test_testing_a_destination_whose_name_now_resolves_to_loopback_sends_nothing(
    api, project, settings, monkeypatch
):
    with running_sink() as sink:
        port = sink.url.split(":")[2].split("/")[0]
        destination = DestinationFactory(
            project=project, config={"url": f"http://hook.example.test:{port}/h"}
        )
        fake_dns(monkeypatch, {"hook.example.test": ["127.0.0.1"]})
        settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = False
        result = api.post(f"/v1/destinations/{destination.pk}/test").json()
        assert result["ok"] is False and result["status"] is None
        assert result["message"] == (
            f"unreachable: hook.example.test resolves to 127.0.0.1, a loopback address {HINT}"
        )
        assert sink.requests == []


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"openai_upstream": "http://127.0.0.1:8080/v1"}, "openai_upstream", "127.0.0.1, a loopback address"),
        (
            {"anthropic_upstream": "http://localhost:4000"},
            "anthropic_upstream",
            "127.0.0.1, a loopback address",
        ),
        (
            {"openai_fallback_upstreams": ["https://8.8.8.8/v1", "http://[fd12::1]/v1"]},
            "openai_fallback_upstreams[1]",
            "fd12::1, a unique local address",
        ),
        (
            {"anthropic_fallback_upstreams": ["http://0x7f000001/"]},
            "anthropic_fallback_upstreams[0]",
            "127.0.0.1, a loopback address",
        ),
    ],
)
def test_proxy_upstreams_resolving_to_private_addresses_are_refused(
    api, project, refused, body, field, message
):
    response = api.patch("/v1/proxy-settings", body, format="json")
    assert response.status_code == 400
    assert response.json() == invalid(field, f"resolves to {message} {HINT}")
    assert not ProxySettings.objects.filter(project=project).exclude(openai_upstream="").exists()
    assert api.get("/v1/proxy-settings").json()["openai_fallback_upstreams"] == []


def test_public_proxy_upstreams_are_saved(api, refused, monkeypatch):
    fake_dns(monkeypatch, {"gateway.example.com": ["8.8.8.8"]})
    body = {
        "openai_upstream": "https://gateway.example.com/v1",
        "openai_fallback_upstreams": ["https://1.1.1.1"],
    }
    response = api.patch("/v1/proxy-settings", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["openai_upstream"] == "https://gateway.example.com/v1"
