"""Deleting an organization: every row it owns goes, in every table, other organizations
are untouched, its Stripe subscription is canceled, and only an owner may, from the
members page, by typing the organization's name."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Organization, Project, User
from apps.accounts.services import invitation_create
from apps.billing.models import Subscription
from apps.core.errors import ApiError
from apps.delivery.models import Delivery
from apps.ingest.models import WebhookMessage
from apps.privacy import services
from apps.privacy.services import organization_delete, organization_purge_continue
from apps.proxy.project_settings import proxy_settings_save
from apps.traces.models import ModelPriceOverride
from tests.factories import (
    ApiKeyFactory,
    DestinationFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    SubscriptionFactory,
    UsageCounterFactory,
    WebhookEndpointFactory,
)
from tests.fakes.stripe_api import fake_stripe
from tests.integration.ingest.helpers import post
from workers.tasks.privacy import continue_organization_purge

pytestmark = pytest.mark.django_db


def _owner_fields() -> list[tuple[Any, str, Any]]:
    """(model, field name, Organization or Project) of every foreign key to an owner."""
    found = []
    for model in django_apps.get_models():
        for field in model._meta.get_fields():
            if field.is_relation and field.concrete and field.related_model in (Organization, Project):
                found.append((model, field.name, field.related_model))
    return found


def owned_counts(organization_id: uuid.UUID, project_ids: list[uuid.UUID], endpoints: list) -> dict:
    """Rows of the organization in every table with an organization or project foreign key,
    and the webhook message ids of its endpoints."""
    counts = {}
    for model, name, related in _owner_fields():
        owners = [organization_id] if related is Organization else project_ids
        counts[f"{model._meta.label}.{name}"] = model._base_manager.filter(**{f"{name}__in": owners}).count()
    counts["ingest.WebhookMessage"] = WebhookMessage.objects.filter(endpoint_id__in=endpoints).count()
    counts["accounts.Organization"] = Organization.objects.filter(pk=organization_id).count()
    return counts


def build_tenant(label: str, stripe_subscription: str = "") -> dict:
    """An organization with two projects and something in every table."""
    organization = OrganizationFactory(name=f"Org {label}", slug=f"org-{label}-{uuid.uuid4().hex[:6]}")
    owner = MembershipFactory(organization=organization, role="owner").user
    MembershipFactory(organization=organization, role="viewer")
    invitation_create(
        organization=organization, email=f"new-{label}@example.com", role="member", invited_by=owner
    )
    SubscriptionFactory(organization=organization, plan="growth", stripe_subscription_id=stripe_subscription)
    UsageCounterFactory(organization=organization, traces=12)
    ModelPriceOverride.objects.create(
        organization=organization, model="gpt-x", input_per_million=1, output_per_million=2
    )
    projects, endpoints = [], []
    for n in range(2):
        project = ProjectFactory(organization=organization)
        key = ApiKeyFactory(project=project)
        destination = DestinationFactory(project=project, name=f"dest {label} {n}")
        endpoint = WebhookEndpointFactory(project=project)
        WebhookMessage.objects.create(endpoint=endpoint, message_id=f"msg-{label}-{n}")
        client = APIClient()
        client.credentials(HTTP_X_UNTRACE_KEY=key.secret)
        document = {"default_destinations": [str(destination.pk)]}
        assert client.put("/v1/routing/config", document, format="json").status_code == 200
        proxy_settings_save(project_id=project.pk, changes={"openai_key": "sk-test"})
        spans = [{"id": f"{label}-{n}-{i}", "user_id": f"u{i % 2}"} for i in range(7)]
        assert post(client, "/v1/traces/batch", {"traces": spans}, key.secret).status_code == 202
        assert client.post("/v1/privacy/erasures", {"user_id": "u1"}, format="json").status_code == 202
        now = timezone.now()
        Delivery.objects.create(
            project=project,
            destination=destination,
            role="primary",
            items=[],
            span_count=0,
            next_attempt_at=now,
            expires_at=now,
        )
        projects.append(project)
        endpoints.append(endpoint.pk)
    return {"organization": organization, "owner": owner, "projects": projects, "endpoints": endpoints}


def counts_of(tenant: dict) -> dict:
    return owned_counts(tenant["organization"].pk, [p.pk for p in tenant["projects"]], tenant["endpoints"])


def test_deleting_an_organization_leaves_none_of_its_rows_and_spares_the_others(settings):
    a, b = build_tenant("a"), build_tenant("b")
    before_a, before_b = counts_of(a), counts_of(b)
    expected_tables = {
        "traces.Span.project",
        "delivery.Delivery.project",
        "destinations.Destination.project",
        "keys.ApiKey.project",
        "routing.RoutingConfigVersion.project",
        "billing.UsageCounter.organization",
        "audit.AuditEvent.organization",
        "privacy.Suppression.project",
        "privacy.Erasure.project",
        "ingest.WebhookMessage",
    }
    assert all(before_a[label] > 0 for label in expected_tables), before_a
    users = User.objects.count()

    result = organization_delete(organization=a["organization"], by_user=a["owner"])

    assert result.done and not result.subscription_canceled  # no Stripe subscription id
    after_a = counts_of(a)
    assert {label: n for label, n in after_a.items() if n} == {}
    assert counts_of(b) == before_b
    assert User.objects.count() == users  # people are not the organization's data


def test_spans_beyond_the_budget_are_deleted_by_the_maintenance_task(
    monkeypatch, django_capture_on_commit_callbacks
):
    a, b = build_tenant("big"), build_tenant("small")
    before_b = counts_of(b)
    monkeypatch.setattr(services, "DELETE_BATCH", 2)
    enqueued: list[str] = []
    monkeypatch.setattr(continue_organization_purge, "delay", lambda org_id: enqueued.append(org_id))

    with django_capture_on_commit_callbacks(execute=True):
        result = organization_delete(organization=a["organization"], by_user=a["owner"], budget_seconds=0)

    assert not result.done and enqueued == [str(a["organization"].pk)]
    left = counts_of(a)
    assert left["traces.Span.project"] > 0  # waiting for the task
    assert left["accounts.Membership.organization"] == 0 and left["keys.ApiKey.project"] == 0  # no access
    assert continue_organization_purge(str(a["organization"].pk)) is True
    assert {label: n for label, n in counts_of(a).items() if n} == {}
    assert counts_of(b) == before_b
    assert organization_purge_continue(str(b["organization"].pk)) is True  # has members: left alone
    assert counts_of(b) == before_b


def test_the_stripe_subscription_is_canceled_first(settings):
    tenant = build_tenant("paid", stripe_subscription="sub_paid123")
    with fake_stripe() as stripe:
        settings.STRIPE_SECRET_KEY = "sk_test_fake"
        settings.STRIPE_API_BASE = stripe.url
        result = organization_delete(organization=tenant["organization"], by_user=tenant["owner"])
        calls = [(r["method"], r["path"]) for r in stripe.recorder.requests]
    assert result.subscription_canceled and result.done
    assert calls == [("DELETE", "/v1/subscriptions/sub_paid123")]
    assert not Subscription.objects.filter(organization_id=tenant["organization"].pk).exists()


def test_a_subscription_stripe_no_longer_knows_does_not_stop_the_deletion(settings):
    tenant = build_tenant("gone", stripe_subscription="sub_gone")
    with fake_stripe() as stripe:
        stripe.missing_subscriptions.add("sub_gone")
        settings.STRIPE_SECRET_KEY = "sk_test_fake"
        settings.STRIPE_API_BASE = stripe.url
        result = organization_delete(organization=tenant["organization"], by_user=tenant["owner"])
    assert result.done and not result.subscription_canceled
    assert not Organization.objects.filter(pk=tenant["organization"].pk).exists()


def test_when_stripe_refuses_nothing_is_deleted(settings):
    tenant = build_tenant("refused", stripe_subscription="sub_refused")
    before = counts_of(tenant)
    with fake_stripe() as stripe:
        stripe.fail_with = (500, "Stripe is down")
        settings.STRIPE_SECRET_KEY = "sk_test_fake"
        settings.STRIPE_API_BASE = stripe.url
        with pytest.raises(ApiError) as refused:
            organization_delete(organization=tenant["organization"], by_user=tenant["owner"])
    assert refused.value.status_code == 502
    assert counts_of(tenant) == before


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_only_an_owner_may_delete_through_the_service(role):
    tenant = build_tenant(f"svc-{role}")
    other = MembershipFactory(organization=tenant["organization"], role=role).user
    before = counts_of(tenant)
    with pytest.raises(PermissionDenied):
        organization_delete(organization=tenant["organization"], by_user=other)
    assert counts_of(tenant) == before


# --- the dashboard ---------------------------------------------------------------------------------


def delete_url(organization) -> str:
    return reverse("dashboard:organization-delete", args=[organization.pk])


def test_an_owner_deletes_from_the_members_page_by_typing_the_name(client):
    tenant, other = build_tenant("dash"), build_tenant("dash-other")
    before_other = counts_of(other)
    organization = tenant["organization"]
    client.force_login(tenant["owner"])
    page = client.get(reverse("dashboard:members", args=[organization.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="organization-delete-form"' in body and delete_url(organization) in body

    wrong = client.post(delete_url(organization), {"confirm_name": organization.name.upper()})
    assert wrong.status_code == 400
    assert "That is not the organization&#x27;s name; nothing was deleted." in wrong.content.decode()
    assert Organization.objects.filter(pk=organization.pk).exists()

    response = client.post(delete_url(organization), {"confirm_name": organization.name}, follow=True)

    assert response.redirect_chain[0] == (reverse("dashboard:home"), 302)
    assert (
        f"Organization “{organization.name}” and all of its data were deleted." in response.content.decode()
    )
    assert {label: n for label, n in counts_of(tenant).items() if n} == {}
    assert counts_of(other) == before_other


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_other_roles_get_403_and_see_no_delete_form(client, role):
    tenant = build_tenant(f"dash-{role}")
    organization = tenant["organization"]
    user = MembershipFactory(organization=organization, role=role).user
    client.force_login(user)
    before = counts_of(tenant)
    page = client.get(reverse("dashboard:members", args=[organization.pk]))
    assert page.status_code == 200 and 'id="organization-delete-form"' not in page.content.decode()
    assert client.post(delete_url(organization), {"confirm_name": organization.name}).status_code == 403
    assert client.get(delete_url(organization)).status_code == 403
    assert counts_of(tenant) == before


def test_a_stranger_gets_404(client):
    tenant, stranger_org = build_tenant("dash-stranger"), build_tenant("dash-stranger-2")
    client.force_login(stranger_org["owner"])
    before = counts_of(tenant)
    response = client.post(delete_url(tenant["organization"]), {"confirm_name": tenant["organization"].name})
    assert response.status_code == 404
    assert counts_of(tenant) == before
