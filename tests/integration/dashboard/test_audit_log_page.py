"""The audit log pages of a project and of an organization: who sees them, what they list,
filters, paging, before/after changes and masked secrets."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.keys.services import key_revoke
from apps.routing.services import Actor
from tests.factories import ApiKeyFactory, MembershipFactory, OrganizationFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def project_log(project) -> str:
    return reverse("dashboard:audit-log", args=[project.pk])


def org_log(organization) -> str:
    return reverse("dashboard:org-audit-log", args=[organization.pk])


def signed_in(client, organization, role="owner"):
    user = MembershipFactory(organization=organization, role=role).user
    client.force_login(user)
    return user


def rows(response) -> list[str]:
    """The data-action of every event row of the page, in order."""
    return re.findall(r'<tr data-action="([^"]+)">', response.content.decode())


def error_text(response, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)', response.content.decode())
    assert match, f"no #{element_id} in the page"
    return match.group(1).strip()


def event(project=None, organization=None, action="key.created", minutes_ago=0, **fields) -> AuditEvent:
    recorded = audit_record(
        action=action,
        organization_id=organization.pk if organization else None,
        project_id=project.pk if project else None,
        **fields,
    )
    if minutes_ago:
        AuditEvent.objects.filter(pk=recorded.pk).update(
            created_at=timezone.now() - timedelta(minutes=minutes_ago)
        )
    return recorded


# --- who may see them ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "member", "viewer"])
def test_every_member_reads_both_logs(client, project, role):
    signed_in(client, project.organization, role)
    event(project, action="destination.created", target_type="destination", details={"name": "langfuse"})

    for url in (project_log(project), org_log(project.organization)):
        response = client.get(url)
        assert response.status_code == 200
        assert rows(response) == ["destination.created"]


def test_another_organization_answers_404(client, project):
    signed_in(client, OrganizationFactory())

    assert client.get(project_log(project)).status_code == 404
    assert client.get(org_log(project.organization)).status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(client, project):
    for url in (project_log(project), org_log(project.organization)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))


def test_linked_from_settings_and_the_organization_pages(client, project):
    signed_in(client, project.organization, "viewer")

    settings_page = client.get(reverse("dashboard:settings", args=[project.pk])).content.decode()
    members_page = client.get(reverse("dashboard:members", args=[project.organization_id])).content.decode()

    assert f'href="{project_log(project)}"' in settings_page
    assert f'href="{org_log(project.organization)}"' in settings_page
    assert f'href="{org_log(project.organization)}"' in members_page


# --- what they list --------------------------------------------------------------------------------


def test_a_key_created_in_the_dashboard_is_listed_with_who_made_it(client, project):
    owner = signed_in(client, project.organization)
    client.post(
        reverse("dashboard:key-create", args=[project.pk]), {"name": "ci runner", "scopes": ["ingest"]}
    )

    response = client.get(project_log(project))

    assert rows(response) == ["key.created"]
    body = response.content.decode()
    assert owner.email in body
    assert "api key “ci runner”" in body
    assert '<a href="{}"'.format(reverse("dashboard:settings", args=[project.pk])) in body  # Settings tab
    assert 'aria-current="page" class="current">Settings</a>' in body


def test_project_log_has_its_events_and_the_organizations_own_but_no_other_projects(client, project):
    signed_in(client, project.organization)
    sibling = ProjectFactory(organization=project.organization)
    stranger = ProjectFactory()
    event(project, action="key.created", minutes_ago=3)
    event(sibling, action="destination.created", minutes_ago=2)
    event(organization=project.organization, action="invitation.created", minutes_ago=1)
    event(stranger, action="key.revoked")

    assert rows(client.get(project_log(project))) == ["invitation.created", "key.created"]
    organization_rows = rows(client.get(org_log(project.organization)))
    assert organization_rows == ["invitation.created", "destination.created", "key.created"]


def test_organization_log_names_the_project_of_each_event(client, project):
    signed_in(client, project.organization)
    event(project, action="key.created")
    event(organization=project.organization, action="membership.accepted")

    body = client.get(org_log(project.organization)).content.decode()

    assert f'<a href="{project_log(project)}">{project.name}</a>' in body
    assert '<span class="muted">organization</span>' in body


def test_an_api_key_actor_is_named_by_the_key(client, project):
    signed_in(client, project.organization)
    key = ApiKeyFactory(project=project, name="deploy bot")
    victim = ApiKeyFactory(project=project, name="old laptop")
    key_revoke(key=victim, actor=Actor(key_id=key.pk))

    response = client.get(project_log(project) + "?action=key.revoked")

    assert rows(response) == ["key.revoked"]
    assert f"API key deploy bot (ut_{key.lookup_id}_…)" in response.content.decode()


def test_empty_log_says_what_adds_events(client, project):
    signed_in(client, project.organization)

    body = client.get(project_log(project)).content.decode()

    assert 'id="audit-empty"' in body
    assert "Nothing recorded yet. Creating or revoking an API key" in body
    assert "<table" not in body and 'id="audit-action"' not in body  # no filters over nothing


# --- before/after and secrets -------------------------------------------------------------------------


def test_a_rename_shows_before_and_after(client, project):
    signed_in(client, project.organization)
    old = project.name
    client.post(reverse("dashboard:settings-project", args=[project.pk]), {"name": "Checkout bot"})

    body = client.get(project_log(project)).content.decode()

    assert rows_of_body(body) == ["project.renamed"]
    assert f'<th scope="row">name</th><td><del>{old}</del></td><td><ins>Checkout bot</ins></td>' in body


def rows_of_body(body: str) -> list[str]:
    return re.findall(r'<tr data-action="([^"]+)">', body)


def test_secret_values_are_masked_and_a_changed_secret_shows_as_changed(client, project):
    signed_in(client, project.organization)
    event(
        project,
        action="destination.updated",
        details={
            "before": {"url": "https://a.example", "api_key": "sk-live-before"},
            "after": {"url": "https://b.example", "api_key": "sk-live-after"},
            "token": "tok-123",
            "changed": ["url", "api_key"],
        },
    )

    body = client.get(project_log(project)).content.decode()

    for secret in ("sk-live-before", "sk-live-after", "tok-123"):
        assert secret not in body
    assert "<del>https://a.example</del>" in body and "<ins>https://b.example</ins>" in body
    assert '<th scope="row">api_key</th><td><del>••••••</del></td><td><ins>••••••</ins></td>' in body
    assert "<dt>token</dt><dd>••••••</dd>" in body
    assert "<dt>changed</dt><dd>url, api_key</dd>" in body


# --- filters ------------------------------------------------------------------------------------


def test_filter_by_action_and_by_actor(client, project):
    owner = signed_in(client, project.organization)
    other = MembershipFactory(organization=project.organization, role="admin").user
    event(project, action="key.created", actor_user_id=owner.pk, minutes_ago=3)
    event(project, action="key.revoked", actor_user_id=other.pk, minutes_ago=2)
    event(project, action="key.created", actor_user_id=other.pk, minutes_ago=1)

    by_action = client.get(project_log(project) + "?action=key.created")
    by_actor = client.get(project_log(project) + f"?actor=user:{other.pk}")
    both = client.get(org_log(project.organization) + f"?action=key.created&actor=user:{owner.pk}")

    assert rows(by_action) == ["key.created", "key.created"]
    assert rows(by_actor) == ["key.created", "key.revoked"]
    assert rows(both) == ["key.created"]
    body = by_actor.content.decode()
    assert f'<option value="user:{other.pk}" selected>{other.email}</option>' in body
    assert '<option value="key.revoked">key.revoked</option>' in body  # every action is offered


def test_a_filter_matching_nothing_offers_to_clear(client, project):
    signed_in(client, project.organization)
    event(project, action="key.created")

    response = client.get(project_log(project) + "?action=routing.saved")

    assert response.status_code == 200
    assert rows(response) == []
    assert "No events match these filters." in response.content.decode()


@pytest.mark.parametrize(
    ("query", "element_id", "message"),
    [
        ("action=Key Created!", "audit-action-error", "Choose an action from the list, e.g. key.created."),
        ("action=" + "a" * 65, "audit-action-error", "Choose an action from the list, e.g. key.created."),
        ("actor=nobody", "audit-actor-error", "Choose who made the change from the list."),
        ("actor=user:abc", "audit-actor-error", "Choose who made the change from the list."),
        ("actor=user:" + "9" * 30, "audit-actor-error", "Choose who made the change from the list."),
        ("actor=key:not-a-uuid", "audit-actor-error", "Choose who made the change from the list."),
        ("before=42", "audit-before-error", "This link to older events is not valid; start from the newest."),
        (
            "before=00000000-0000-0000-0000-000000000000",
            "audit-before-error",
            "This link to older events is not valid; start from the newest.",
        ),
    ],
)
def test_bad_filters_answer_400_next_to_the_field(client, project, query, element_id, message):
    signed_in(client, project.organization)
    event(project, action="key.created")

    for url in (project_log(project), org_log(project.organization)):
        response = client.get(f"{url}?{query}")
        assert response.status_code == 400
        assert error_text(response, element_id) == message
        assert rows(response) == []


def test_a_cursor_of_another_organization_is_refused(client, project):
    signed_in(client, project.organization)
    event(project, action="key.created")
    foreign = event(ProjectFactory(), action="key.created")

    response = client.get(project_log(project) + f"?before={foreign.pk}")

    assert response.status_code == 400
    assert rows(response) == []


# --- paging ---------------------------------------------------------------------------------------


def test_older_events_page_by_page_and_with_htmx(client, project):
    signed_in(client, project.organization)
    for i in range(55):
        event(project, action="key.created" if i % 2 else "key.revoked", minutes_ago=100 - i)

    first = client.get(project_log(project))
    assert len(rows(first)) == 50
    more = re.search(r'<a href="([^"]+)" hx-get="[^"]+" hx-target="#audit-more"', first.content.decode())
    assert more, "no link to older events"
    older_url = more.group(1).replace("&amp;", "&")

    older = client.get(older_url)
    assert older.status_code == 200 and len(rows(older)) == 5
    assert 'id="audit-more"' not in older.content.decode()
    assert "Back to the newest events" in older.content.decode()
    shown = re.findall(r'datetime="([^"]+)"', first.content.decode() + older.content.decode())
    assert len(set(shown)) == 55 and shown == sorted(shown, reverse=True)  # each once, newest first

    fragment = client.get(older_url, HTTP_HX_REQUEST="true")
    body = fragment.content.decode()
    assert fragment.status_code == 200
    assert "<html" not in body and len(rows(fragment)) == 5


def test_paging_keeps_the_filters(client, project):
    signed_in(client, project.organization)
    for i in range(52):
        event(project, action="key.created", minutes_ago=100 - i)
    event(project, action="key.revoked")

    first = client.get(project_log(project) + "?action=key.created")
    older_url = re.search(r'id="audit-more">\s*<td[^>]*>\s*<a href="([^"]+)"', first.content.decode())
    older = client.get(older_url.group(1).replace("&amp;", "&"))

    assert "action=key.created" in older_url.group(1)
    assert rows(older) == ["key.created", "key.created"]
