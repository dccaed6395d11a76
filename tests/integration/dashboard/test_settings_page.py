"""Project settings page: webhook ingest endpoints, PII defaults and the project's name."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook

from apps.accounts.models import Project
from apps.ingest.models import WebhookEndpoint
from apps.ingest.webhooks import webhook_verify
from apps.routing.models import RoutingConfigVersion
from apps.routing.pii import DETECTORS
from apps.routing.services import Actor, active_document, config_save
from tests.factories import MembershipFactory, ProjectFactory, SubscriptionFactory, WebhookEndpointFactory

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{40,}")


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def url(name, project, *args):
    return reverse(f"dashboard:{name}", args=[project.pk, *args])


def secrets_in(response) -> list[str]:
    return SECRET.findall(response.content.decode())


def field_error(response, error_id: str) -> str:
    match = re.search(rf'id="{error_id}">([^<]*)<', response.content.decode())
    assert match, f"no #{error_id} in the page"
    return match.group(1)


# --- page ----------------------------------------------------------------------------------------


def test_page_shows_tab_sections_and_empty_states(signed_in, project):
    response = signed_in.get(url("settings", project))

    assert response.status_code == 200
    body = response.content.decode()
    assert f'href="{url("settings", project)}" aria-current="page"' in body
    assert "No webhook endpoints yet: create one below" in body
    assert "Signed-webhook ingest" in body and "PII defaults" in body
    assert str(project.pk) in body
    assert reverse("dashboard:members", args=[project.organization_id]) in body
    assert "standardwebhooks" in body and "Webhook(secret).sign(" in body
    assert '<span class="badge">off</span>' in body  # PII redaction currently live: off


def test_viewer_reads_without_write_forms(client, project):
    WebhookEndpointFactory(project=project, name="vendor")
    viewer = MembershipFactory(organization=project.organization, role="viewer").user
    client.force_login(viewer)

    response = client.get(url("settings", project))

    assert response.status_code == 200
    body = response.content.decode()
    assert "vendor" in body
    assert 'id="webhook-form"' not in body and 'id="pii-form"' not in body and 'id="project-form"' not in body
    assert "Rotate secret" not in body


# --- webhook endpoints ------------------------------------------------------------------------------


def test_create_shows_the_secret_exactly_once(signed_in, project):
    response = signed_in.post(
        url("settings-webhook-create", project), {"name": "support bot", "enabled": "on"}
    )

    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get(project=project)
    assert endpoint.name == "support bot" and endpoint.enabled
    assert secrets_in(response) == [endpoint.secret]
    assert response["Cache-Control"] == "no-store"
    body = response.content.decode()
    assert "copy it now, it will not be shown again" in body
    assert f"/v1/webhooks/{endpoint.pk}" in body
    assert "never" in body  # last received

    again = signed_in.get(url("settings", project))
    assert secrets_in(again) == []
    assert "support bot" in again.content.decode()


def test_create_disabled_endpoint(signed_in, project):
    signed_in.post(url("settings-webhook-create", project), {"name": "later"})

    assert WebhookEndpoint.objects.get(project=project).enabled is False


@pytest.mark.parametrize(
    ("name", "error"),
    [("", "Give the endpoint a name."), ("x" * 201, "at most 200 characters")],
)
def test_create_bad_name_errors_next_to_the_field(signed_in, project, name, error):
    response = signed_in.post(url("settings-webhook-create", project), {"name": name})

    assert response.status_code == 400
    assert error in field_error(response, "webhook-name-error")
    assert 'aria-invalid="true"' in response.content.decode()
    assert not WebhookEndpoint.objects.exists()
    assert secrets_in(response) == []


def test_rotate_shows_the_new_secret_once_and_the_old_one_keeps_verifying(signed_in, project):
    endpoint = WebhookEndpointFactory(project=project, name="vendor")
    old = WebhookEndpoint.objects.get(pk=endpoint.pk).secret

    response = signed_in.post(url("settings-webhook-rotate", project, endpoint.pk))

    assert response.status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.secret != old
    assert secrets_in(response) == [endpoint.secret]
    body = response.content.decode()
    assert "The previous secret keeps verifying for 24 hours" in body
    expires = endpoint.previous_secret_expires_at
    assert timedelta(hours=23, minutes=59) < expires - timezone.now() <= timedelta(hours=24)
    assert secrets_in(signed_in.get(url("settings", project))) == []
    assert "previous secret valid until" in signed_in.get(url("settings", project)).content.decode()

    now = timezone.now()
    for secret in (old, endpoint.secret):
        headers = {
            "webhook-id": f"msg-{uuid.uuid4().hex}",
            "webhook-timestamp": str(int(now.timestamp())),
        }
        headers["webhook-signature"] = Webhook(secret).sign(headers["webhook-id"], now, "{}")
        assert webhook_verify(endpoint_id=endpoint.pk, headers=headers, body=b"{}").project_id == project.pk


def test_disable_enable_and_delete(signed_in, project):
    endpoint = WebhookEndpointFactory(project=project, name="vendor")

    response = signed_in.post(url("settings-webhook-toggle", project, endpoint.pk), {"enabled": "false"})
    assert response.status_code == 302 and response["Location"].endswith("#webhooks")
    endpoint.refresh_from_db()
    assert endpoint.enabled is False
    page = signed_in.get(url("settings", project)).content.decode()
    assert "is disabled: requests to it get 404" in page
    assert '<span class="badge">disabled</span>' in page

    signed_in.post(url("settings-webhook-toggle", project, endpoint.pk), {"enabled": "true"})
    endpoint.refresh_from_db()
    assert endpoint.enabled is True

    page = signed_in.get(url("settings", project)).content.decode()
    assert 'data-confirm="Delete vendor? Requests to its URL will get 404."' in page
    response = signed_in.post(url("settings-webhook-delete", project, endpoint.pk))
    assert response.status_code == 302
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_last_received_is_shown(signed_in, project):
    endpoint = WebhookEndpointFactory(project=project, name="vendor")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(last_received_at=timezone.now())

    body = signed_in.get(url("settings", project)).content.decode()

    assert timezone.now().strftime("%Y-%m-%d") in body


def test_another_projects_endpoint_is_not_found(signed_in, project):
    other = WebhookEndpointFactory(project=ProjectFactory(organization=project.organization))

    for name in ("settings-webhook-rotate", "settings-webhook-toggle", "settings-webhook-delete"):
        assert signed_in.post(url(name, project, other.pk), {"enabled": "false"}).status_code == 404, name
    other.refresh_from_db()
    assert other.enabled


# --- PII defaults -----------------------------------------------------------------------------------


def pii_post(client, project, **fields):
    data = {"enabled": "on", "mode": "mask", "detectors": ["email", "phone"], **fields}
    return client.post(url("settings-pii", project), {k: v for k, v in data.items() if v is not None})


def test_turn_on_pii_writes_one_version_and_shows_it_live(signed_in, project, owner):
    response = pii_post(signed_in, project, mode="hash", gdpr="on")

    assert response.status_code == 302 and response["Location"].endswith("#pii")
    version, document = active_document(project.pk)
    assert version == 1
    assert document["transformations"] == [
        {"type": "redact_pii", "mode": "hash", "detectors": ["email", "phone"], "preset": "gdpr"}
    ]
    saved = RoutingConfigVersion.objects.get(project_id=project.pk)
    assert saved.created_by_id == owner.pk
    assert saved.summary == "Turned on PII redaction for every destination"

    body = signed_in.get(url("settings", project)).content.decode()
    assert "PII defaults saved as routing version 1." in body
    assert "(routing version 1)" in body
    assert '<span class="badge ok">on</span> Mode <strong>hash</strong>' in body
    assert "email addresses, phone numbers" in body and "GDPR preset" in body
    assert re.search(r'value="hash"[^>]*checked', body) and re.search(r'value="email"[^>]*checked', body)
    assert not re.search(r'value="iban"[^>]*checked', body)

    again = pii_post(signed_in, project, mode="hash", gdpr="on")
    assert again.status_code == 302
    assert RoutingConfigVersion.objects.filter(project_id=project.pk).count() == 1  # nothing changed


def test_pii_keeps_other_project_steps_and_custom_detectors(signed_in, project):
    set_step = {"type": "set", "path": "metadata.team", "value": "checkout"}
    redact = {"type": "redact_pii", "custom": [{"name": "employee_id", "pattern": "EMP-\\d{6}"}]}
    config_save(
        project_id=project.pk,
        document={"transformations": [set_step, redact]},
        actor=Actor(),
        summary="setup",
    )

    response = pii_post(signed_in, project, detectors=["email"], mode="remove")

    assert response.status_code == 302
    _, document = active_document(project.pk)
    assert document["transformations"] == [set_step, {**redact, "mode": "remove", "detectors": ["email"]}]
    body = signed_in.get(url("settings", project)).content.decode()
    assert "1 custom detector kept" in body and "Other project-level steps, kept as they are: set" in body

    off = pii_post(signed_in, project, enabled=None)
    assert off.status_code == 302
    version, document = active_document(project.pk)
    assert version == 3
    assert document["transformations"] == [set_step]
    assert RoutingConfigVersion.objects.get(project_id=project.pk, number=3).summary.startswith("Turned off")


def test_pii_nothing_selected_is_refused_next_to_the_detectors(signed_in, project):
    response = pii_post(signed_in, project, detectors=[])

    assert response.status_code == 400
    assert "selects nothing to redact" in field_error(response, "pii-detectors-error")
    assert not RoutingConfigVersion.objects.filter(project_id=project.pk).exists()


def test_pii_unknown_mode_and_detector_errors_next_to_the_fields(signed_in, project):
    response = pii_post(signed_in, project, mode="shred", detectors=["email", "dna"])

    assert response.status_code == 400
    assert "Select a valid choice" in field_error(response, "pii-mode-error")
    assert "dna is not one of the available choices" in field_error(response, "pii-detectors-error")
    assert not RoutingConfigVersion.objects.filter(project_id=project.pk).exists()


def test_pii_stale_form_is_refused(signed_in, project):
    config_save(project_id=project.pk, document={}, actor=Actor(), summary="someone else")

    response = pii_post(signed_in, project, base_version="0")

    assert response.status_code == 409
    assert "reload it and apply the change again" in response.content.decode()
    assert RoutingConfigVersion.objects.filter(project_id=project.pk).count() == 1


def test_all_detectors_are_offered(signed_in, project):
    body = signed_in.get(url("settings", project)).content.decode()

    for name in DETECTORS:
        assert f'name="detectors" value="{name}"' in body


# --- project --------------------------------------------------------------------------------------------


def test_owner_renames_the_project(signed_in, project):
    slug = project.slug
    response = signed_in.post(url("settings-project", project), {"name": "  Checkout  "})

    assert response.status_code == 302 and response["Location"].endswith("#project")
    project.refresh_from_db()
    assert (project.name, project.slug) == ("Checkout", slug)
    assert "Project renamed to “Checkout”." in signed_in.get(url("settings", project)).content.decode()


@pytest.mark.parametrize(
    ("name", "error"), [("   ", "A project needs a name."), ("x" * 201, "at most 200 characters")]
)
def test_rename_bad_name_errors_next_to_the_field(signed_in, project, name, error):
    before = project.name

    response = signed_in.post(url("settings-project", project), {"name": name})

    assert response.status_code == 400
    assert error in field_error(response, "project-name-error")
    assert Project.objects.get(pk=project.pk).name == before


def test_member_cannot_rename(client, project):
    member = MembershipFactory(organization=project.organization, role="member").user
    client.force_login(member)

    assert 'id="project-form"' not in client.get(url("settings", project)).content.decode()
    assert client.post(url("settings-project", project), {"name": "Mine"}).status_code == 403


def test_admin_can_rename(client, project):
    admin = MembershipFactory(organization=project.organization, role="admin").user
    client.force_login(admin)

    assert client.post(url("settings-project", project), {"name": "Renamed"}).status_code == 302


# --- access ---------------------------------------------------------------------------------------------


def write_requests(project, endpoint):
    return [
        (url("settings-webhook-create", project), {"name": "x"}),
        (url("settings-webhook-rotate", project, endpoint.pk), {}),
        (url("settings-webhook-toggle", project, endpoint.pk), {"enabled": "false"}),
        (url("settings-webhook-delete", project, endpoint.pk), {}),
        (url("settings-pii", project), {"enabled": "on", "mode": "mask", "detectors": ["email"]}),
        (url("settings-project", project), {"name": "x"}),
    ]


def test_viewer_gets_403_on_every_write(client, project):
    endpoint = WebhookEndpointFactory(project=project, name="vendor")
    secret = WebhookEndpoint.objects.get(pk=endpoint.pk).secret
    viewer = MembershipFactory(organization=project.organization, role="viewer").user
    client.force_login(viewer)

    for address, data in write_requests(project, endpoint):
        assert client.post(address, data).status_code == 403, address

    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.secret) == (True, secret)
    assert WebhookEndpoint.objects.filter(project=project).count() == 1
    assert not RoutingConfigVersion.objects.filter(project_id=project.pk).exists()
    assert Project.objects.get(pk=project.pk).name == project.name


def test_another_organizations_project_is_not_found(signed_in):
    other = ProjectFactory()
    endpoint = WebhookEndpointFactory(project=other, name="theirs")

    assert signed_in.get(url("settings", other)).status_code == 404
    for address, data in write_requests(other, endpoint):
        assert signed_in.post(address, data).status_code == 404, address
    assert WebhookEndpoint.objects.filter(project=other).count() == 1
    assert not RoutingConfigVersion.objects.filter(project_id=other.pk).exists()


def test_writes_need_post(signed_in, project):
    endpoint = WebhookEndpointFactory(project=project)

    assert signed_in.get(url("settings-webhook-delete", project, endpoint.pk)).status_code == 405
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_proxy_settings_section_saves_upstreams_fallbacks_and_write_only_keys(
    client, owner, project, settings
):
    from apps.proxy.models import ProxySettings

    client.force_login(owner)
    url = f"/projects/{project.pk}/settings/proxy"
    saved = client.post(
        url,
        {
            "openai_upstream": "https://gateway.example.com/openai",
            "openai_fallback_upstreams": "https://backup.example.com\n\nhttps://third.example.com/",
            "openai_key": "sk-stored-key",
            "anthropic_upstream": "",
            "anthropic_fallback_upstreams": "",
        },
    )
    assert saved.status_code == 302
    row = ProxySettings.objects.get(project=project)
    assert row.openai_upstream == "https://gateway.example.com/openai"
    assert row.openai_fallback_upstreams == ["https://backup.example.com", "https://third.example.com"]
    assert row.key("openai") == "sk-stored-key"
    page = client.get(f"/projects/{project.pk}/settings").content.decode()
    assert "sk-stored-key" not in page and "Stored keys: OpenAI yes" in page
    client.post(url, {"openai_upstream": "https://gateway.example.com/openai", "clear_openai_key": "on"})
    assert ProxySettings.objects.get(project=project).key("openai") == ""

    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = False
    bad = client.post(url, {"openai_upstream": "http://10.1.2.3/v1"})
    assert bad.status_code == 400 and "resolves to 10.1.2.3, a private address" in bad.content.decode()
    bad = client.post(url, {"anthropic_fallback_upstreams": "ftp://nope"})
    assert bad.status_code == 400 and "http:// or https://" in bad.content.decode()


def test_the_settings_tab_states_the_plans_retention(signed_in, project, settings):
    SubscriptionFactory(organization=project.organization, plan="growth")
    page = signed_in.get(url("settings", project)).content.decode()
    assert 'id="retention"' in page
    assert "kept for <strong>30 days</strong>" in page
