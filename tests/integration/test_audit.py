import json

import pytest
import stripe
from django.contrib.admin.sites import site
from django.core import mail
from django.test import RequestFactory
from rest_framework.test import APIClient

from apps.accounts.services import invitation_accept, invitation_create
from apps.audit.models import AuditEvent
from apps.billing.models import Plan, Subscription
from apps.billing.stripe_billing import webhook_handle
from tests.factories import ApiKeyFactory, MembershipFactory, ProjectFactory, SubscriptionFactory, UserFactory

pytestmark = pytest.mark.django_db

LANGFUSE = {
    "name": "langfuse eu",
    "type": "langfuse",
    "config": {"host": "https://cloud.langfuse.com", "public_key": "pk-lf-1", "secret_key": "sk-lf-secret"},
}


@pytest.fixture(autouse=True)
def _empty_log(api):
    AuditEvent.objects.all().delete()  # the fixtures' keys were created through the service


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("created_at"))


def _log(api: APIClient, **params: str) -> list[dict]:
    response = api.get("/v1/audit-log", params)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def _assert_absent(secrets: list[str], api: APIClient) -> None:
    stored = json.dumps([e.details for e in AuditEvent.objects.all()])
    served = api.get("/v1/audit-log", {"limit": 200}).content.decode()
    for secret in secrets:
        assert secret not in stored
        assert secret not in served


def test_key_events_name_the_calling_key_and_hold_no_secret(api, api_key, project):
    created = api.post("/v1/keys", {"name": "backend", "scopes": ["read"]}, format="json").json()
    rotated = api.post(f"/v1/keys/{created['id']}/rotate", {"grace_seconds": 60}, format="json").json()
    api.post(f"/v1/keys/{rotated['id']}/revoke")

    (event,) = _events("key.created")
    assert (event.actor_key_id, event.actor_user_id) == (api_key.pk, None)
    assert (event.project_id, event.organization_id) == (project.pk, project.organization_id)
    assert (event.target_type, event.target_id) == ("api_key", created["id"])
    assert event.details["scopes"] == ["read"]
    assert event.ip == "127.0.0.1"
    (event,) = _events("key.rotated")
    assert (event.target_id, event.details["new_key_id"]) == (created["id"], rotated["id"])
    assert event.details["grace_seconds"] == 60 and event.actor_key_id == api_key.pk
    (event,) = _events("key.revoked")
    assert (event.target_id, event.actor_key_id) == (rotated["id"], api_key.pk)

    actions = [e["action"] for e in _log(api)]
    assert actions == ["key.revoked", "key.rotated", "key.created"]  # newest first
    _assert_absent([created["secret"], rotated["secret"], api_key.secret], api)


def test_destination_events_name_changed_settings_only(api, api_key):
    created = api.post("/v1/destinations", LANGFUSE, format="json").json()
    patch = {"name": "renamed", "config": {"secret_key": "sk-lf-rotated", "api": "ingestion"}}
    assert api.patch(f"/v1/destinations/{created['id']}", patch, format="json").status_code == 200
    assert api.delete(f"/v1/destinations/{created['id']}").status_code == 204

    (event,) = _events("destination.created")
    assert (event.target_type, event.target_id, event.actor_key_id) == (
        "destination",
        created["id"],
        api_key.pk,
    )
    assert event.details == {"name": "langfuse eu", "type": "langfuse"}
    (event,) = _events("destination.updated")
    assert event.details == {"name": "renamed", "changed": ["config.api", "config.secret_key", "name"]}
    (event,) = _events("destination.deleted")
    assert (event.target_id, event.details["name"]) == (created["id"], "renamed")
    _assert_absent(["sk-lf-secret", "sk-lf-rotated"], api)


def test_routing_saves_and_rollbacks_carry_version_and_summary(api, api_key):
    destination = api.post("/v1/destinations", LANGFUSE, format="json").json()
    document = {"rules": [], "default_destinations": [destination["id"]]}
    assert api.put("/v1/routing/config", document, format="json").status_code == 200
    assert api.post("/v1/routing/versions/1/rollback").status_code in (200, 201)

    saved = _events("routing.config_saved")
    assert [e.details["version"] for e in saved] == [1]
    assert saved[0].actor_key_id == api_key.pk and saved[0].target_type == "routing_config"
    (rollback,) = _events("routing.config_rolled_back")
    assert rollback.details == {"version": 2, "summary": "Rolled back to version 1"}


def test_webhook_and_proxy_events_hold_no_secret(api, api_key):
    created = api.post("/v1/webhook-endpoints", {"name": "hooks"}, format="json").json()
    rotated = api.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret").json()
    response = api.patch(
        "/v1/proxy-settings",
        {"openai_key": "sk-provider-secret", "openai_upstream": "https://gateway.example.com/v1"},
        format="json",
    )
    assert response.status_code == 200, response.content

    (event,) = _events("webhook_endpoint.created")
    assert (event.target_id, event.actor_key_id) == (created["id"], api_key.pk)
    (event,) = _events("webhook_endpoint.secret_rotated")
    assert (event.target_id, event.details["name"]) == (created["id"], "hooks")
    (event,) = _events("proxy_settings.changed")
    assert event.details == {"changed": ["openai_key", "openai_upstream"]}
    assert event.actor_key_id == api_key.pk
    _assert_absent([created["secret"], rotated["secret"], "sk-provider-secret"], api)


def test_webhook_endpoint_changes_and_deletion_are_recorded(api, api_key, project, owner, client):
    created = api.post("/v1/webhook-endpoints", {"name": "hooks"}, format="json").json()
    assert (
        api.patch(f"/v1/webhook-endpoints/{created['id']}", {"enabled": False}, format="json").status_code
        == 200
    )
    api.patch(f"/v1/webhook-endpoints/{created['id']}", {"enabled": False}, format="json")  # no change
    (event,) = _events("webhook_endpoint.updated")
    assert event.details == {"name": "hooks", "before": {"enabled": True}, "after": {"enabled": False}}
    assert event.actor_key_id == api_key.pk

    client.force_login(owner)
    toggled = client.post(
        f"/projects/{project.pk}/settings/webhooks/{created['id']}/toggle", {"enabled": "true"}
    )
    assert toggled.status_code == 302
    assert _events("webhook_endpoint.updated")[-1].actor_user_id == owner.pk
    assert api.delete(f"/v1/webhook-endpoints/{created['id']}").status_code == 204
    (event,) = _events("webhook_endpoint.deleted")
    assert (event.target_id, event.details, event.actor_key_id) == (
        created["id"],
        {"name": "hooks"},
        api_key.pk,
    )


def test_plan_changes_by_stripe_and_by_staff_are_recorded(project, settings, client):

    organization = project.organization
    row = SubscriptionFactory(organization=organization, plan="starter", stripe_customer_id="cus_a")
    settings.STRIPE_PRICE_GROWTH = "price_growth"
    event = {
        "id": "evt_audit",
        "object": "event",
        "type": "customer.subscription.updated",
        "created": 2_000_000_000,
        "data": {
            "object": {
                "id": "sub_a",
                "object": "subscription",
                "customer": "cus_a",
                "status": "active",
                "metadata": {"organization_id": str(organization.pk)},
                "items": {"data": [{"price": {"id": "price_growth"}, "current_period_start": 2_000_000_000}]},
            }
        },
    }
    webhook_handle(stripe.Event.construct_from(event, "sk_test"))
    (changed,) = _events("billing.plan_changed")
    assert changed.details == {
        "before": {"plan": "starter", "status": "active"},
        "after": {"plan": "growth", "status": "active"},
        "by": "stripe",
    }

    staff = UserFactory(is_staff=True, is_superuser=True)
    request = RequestFactory().post("/admin/")
    request.user = staff
    model_admin = site._registry[Subscription]
    row.refresh_from_db()
    row.plan = Plan.objects.get(code="scale")
    row.custom_monthly_traces = 5_000
    model_admin.save_model(request, row, form=None, change=True)
    staff_change = _events("billing.plan_changed")[-1]
    assert staff_change.actor_user_id == staff.pk
    assert staff_change.details == {
        "before": {"plan": "growth", "custom_monthly_traces": None},
        "after": {"plan": "scale", "custom_monthly_traces": 5000},
        "by": "staff",
    }


def test_invitation_and_membership_are_organization_events(api, project, owner):
    invitation, token = invitation_create(
        organization=project.organization, email="new@example.com", role="member", invited_by=owner
    )
    user = UserFactory(email="new@example.com")
    membership = invitation_accept(token=token, user=user)
    assert len(mail.outbox) == 1

    (event,) = _events("invitation.created")
    assert (event.project_id, event.actor_user_id, event.target_id) == (None, owner.pk, str(invitation.pk))
    assert event.details == {"email": "new@example.com", "role": "member"}
    (event,) = _events("membership.accepted")
    assert (event.actor_user_id, event.target_id) == (user.pk, str(membership.pk))
    # organization-level events are visible to any key of the organization
    assert {e["action"] for e in _log(api)} == {"invitation.created", "membership.accepted"}
    _assert_absent([token], api)


def test_another_tenants_events_are_not_visible(api, project):
    same_org_other_project = ProjectFactory(organization=project.organization)
    other_org = ProjectFactory()
    for target in (same_org_other_project, other_org):
        client = APIClient()
        client.credentials(HTTP_X_UNTRACE_KEY=ApiKeyFactory(project=target).secret)
        assert (
            client.post("/v1/keys", {"name": "theirs", "scopes": ["read"]}, format="json").status_code == 201
        )
    invitation_create(
        organization=other_org.organization,
        email="x@example.com",
        role="viewer",
        invited_by=MembershipFactory(organization=other_org.organization, role="owner").user,
    )
    api.post("/v1/keys", {"name": "mine", "scopes": ["read"]}, format="json")

    assert AuditEvent.objects.count() == 6  # 2 factory keys, 3 API keys, 1 invitation
    assert [e["details"]["name"] for e in _log(api)] == ["mine"]


def test_filters_and_pagination(api):
    for name in ("a", "b", "c"):
        api.post("/v1/keys", {"name": name, "scopes": ["read"]}, format="json")
    first = AuditEvent.objects.order_by("created_at").first()
    api.post(f"/v1/keys/{first.target_id}/revoke")

    assert [e["action"] for e in _log(api, action="key.revoked")] == ["key.revoked"]
    assert len(_log(api, since=first.created_at.isoformat())) == 4
    assert _log(api, until=first.created_at.isoformat()) == []
    page = api.get("/v1/audit-log", {"limit": 3}).json()
    assert [e["details"]["name"] for e in page["results"]] == ["a", "c", "b"]
    rest = api.get(page["next"]).json()
    assert [e["details"]["name"] for e in rest["results"]] == ["a"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"action": "Key Created!"}, "action"),
        ({"actor": "x"}, "actor"),
    ],
)
def test_bad_filters_are_400_naming_the_field(api, params, field):
    response = api.get("/v1/audit-log", params)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["field"] == field


def test_needs_the_read_scope(project):
    client = APIClient()
    client.credentials(HTTP_X_UNTRACE_KEY=ApiKeyFactory(project=project, scopes=["ingest"]).secret)
    assert client.get("/v1/audit-log").status_code == 403


def test_a_failing_audit_never_breaks_the_service(api, project, owner, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(AuditEvent.objects, "create", broken)
    created = api.post("/v1/keys", {"name": "k", "scopes": ["read"]}, format="json")
    assert created.status_code == 201
    assert api.post(f"/v1/keys/{created.json()['id']}/rotate").status_code == 201
    assert api.post(f"/v1/keys/{created.json()['id']}/revoke").status_code == 200
    destination = api.post("/v1/destinations", LANGFUSE, format="json")
    assert destination.status_code == 201
    document = {"rules": [], "default_destinations": [destination.json()["id"]]}
    assert api.put("/v1/routing/config", document, format="json").status_code == 200
    assert (
        api.patch(f"/v1/destinations/{destination.json()['id']}", {"name": "n"}, format="json").status_code
        == 200
    )
    assert api.post("/v1/webhook-endpoints", {"name": "h"}, format="json").status_code == 201
    assert api.patch("/v1/proxy-settings", {"openai_upstream": ""}, format="json").status_code == 200
    _, token = invitation_create(
        organization=project.organization, email="z@example.com", role="viewer", invited_by=owner
    )
    invitation_accept(token=token, user=UserFactory(email="z@example.com"))
    assert AuditEvent.objects.count() == 0
