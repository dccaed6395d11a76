"""The Budgets section of the project settings: list with spend, create, edit, delete, field errors."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.budgets.models import Budget
from apps.budgets.services import budget_create
from tests.factories import MembershipFactory, ProjectFactory
from tests.integration.budgets.conftest import _budget_state, ingest_costs, routed  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{40,}")


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def url(name, project, *args):
    return reverse(f"dashboard:{name}", args=[project.pk, *args])


def form(**fields) -> dict:
    return {
        "name": "Monthly LLM",
        "api_key": "",
        "amount_usd": "100",
        "period": "monthly",
        "thresholds": "50, 80, 100",
        "alert_emails": "ops@example.com\ncto@example.com",
        "alert_webhook_url": "",
        "hard_stop": "on",
        "enabled": "on",
        **fields,
    }


def field_error(response, name: str) -> str:
    match = re.search(rf'id="budget-{name}-error">([^<]*)<', response.content.decode())
    assert match, f"no error for {name} in the page"
    return match.group(1)


def test_the_section_lists_budgets_with_their_spend(signed_in, project, api_key):
    response = signed_in.get(url("settings", project))
    assert "No budgets yet: create one below." in response.content.decode()

    budget, _ = budget_create(project_id=project.pk, name="Prod", amount_usd="10")
    ingest_costs(signed_in, api_key.secret, [2.5])
    body = signed_in.get(url("settings", project)).content.decode()
    assert f'id="budget-{budget.pk}-spend">$2.50 of $10.00 (25.0 %)<' in body
    assert 'aria-valuenow="25"' in body and '<span style="width: 25%">' in body
    assert 'href="#budgets">Budgets</a>' in body


def test_create_shows_the_secret_once_and_is_audited(signed_in, project, owner):
    response = signed_in.post(url("settings-budget-create", project), form())

    assert response.status_code == 200
    budget = Budget.objects.get(project=project)
    assert (budget.name, str(budget.amount_usd), budget.thresholds) == (
        "Monthly LLM",
        "100.00",
        [50, 80, 100],
    )
    assert budget.alert_emails == ["ops@example.com", "cto@example.com"]
    assert budget.hard_stop is True and budget.enabled is True and budget.api_key_id is None
    (secret,) = SECRET.findall(response.content.decode())
    assert response["Cache-Control"] == "no-store"
    assert SECRET.findall(signed_in.get(url("settings", project)).content.decode()) == []
    event = AuditEvent.objects.get(action="budget.created")
    assert event.actor_user_id == owner.pk and secret not in str(event.details)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"amount_usd": "0"}, "amount_usd", "must be greater than 0"),
        ({"amount_usd": "lots"}, "amount_usd", "Enter a number, e.g. 250.00."),
        ({"thresholds": "50, x"}, "thresholds", "“x” is not a whole percent."),
        ({"thresholds": "50, 2000"}, "thresholds", "must be between 1 and 1000"),
        ({"thresholds": "80, 80"}, "thresholds", "80 is listed twice"),
        (
            {"alert_emails": "ops@example.com, nope"},
            "alert_emails",
            "&#x27;nope&#x27; is not a valid email address",
        ),
        (
            {"alert_webhook_url": "ftp://x.example.com"},
            "alert_webhook_url",
            "must be an http:// or https:// URL with a host",
        ),
        ({"name": ""}, "name", "Give the budget a name."),
    ],
)
def test_errors_show_next_to_their_field(signed_in, project, fields, field, message):
    response = signed_in.post(url("settings-budget-create", project), form(**fields))
    assert response.status_code == 400
    assert field_error(response, field) == message
    assert not Budget.objects.exists()


def test_a_key_of_another_project_is_refused(signed_in, project):
    from tests.factories import ApiKeyFactory

    foreign = ApiKeyFactory(project=ProjectFactory())
    response = signed_in.post(url("settings-budget-create", project), form(api_key=str(foreign.pk)))
    assert response.status_code == 400
    assert "is not one of the available choices" in field_error(response, "api_key")


def test_edit_and_delete(signed_in, project, api_key):
    budget, _ = budget_create(project_id=project.pk, name="Old", amount_usd="10", thresholds=[90])
    page = signed_in.get(url("settings", project) + f"?budget={budget.pk}").content.decode()
    assert url("settings-budget-update", project, budget.pk) in page
    assert 'value="90"' in page and 'value="Old"' in page

    response = signed_in.post(
        url("settings-budget-update", project, budget.pk),
        form(name="New", amount_usd="20.5", api_key=str(api_key.pk), hard_stop="", period="daily"),
    )
    assert response.status_code == 302
    budget.refresh_from_db()
    assert (budget.name, str(budget.amount_usd), budget.api_key_id, budget.hard_stop, budget.period) == (
        "New",
        "20.50",
        api_key.pk,
        False,
        "daily",
    )

    bad = signed_in.post(url("settings-budget-update", project, budget.pk), form(amount_usd="-1"))
    assert bad.status_code == 400 and field_error(bad, "amount_usd") == "must be greater than 0"
    assert url("settings-budget-update", project, budget.pk) in bad.content.decode()

    response = signed_in.post(url("settings-budget-delete", project, budget.pk))
    assert response.status_code == 302
    assert not Budget.objects.exists()
    assert list(
        AuditEvent.objects.filter(target_type="budget")
        .values_list("action", flat=True)
        .order_by("created_at")
    ) == [
        "budget.created",
        "budget.updated",
        "budget.deleted",
    ]


def test_viewers_read_but_cannot_change(client, project):
    budget, _ = budget_create(project_id=project.pk, name="Prod", amount_usd="10")
    viewer = MembershipFactory(organization=project.organization, role="viewer").user
    client.force_login(viewer)
    page = client.get(url("settings", project)).content.decode()
    assert "Prod" in page and 'id="budget-form"' not in page
    assert client.post(url("settings-budget-create", project), form()).status_code == 403
    assert client.post(url("settings-budget-delete", project, budget.pk)).status_code == 403
    assert Budget.objects.count() == 1


def test_another_projects_budget_is_not_found(signed_in, project):
    other, _ = budget_create(project_id=ProjectFactory().pk, name="Theirs", amount_usd="10")
    assert signed_in.post(url("settings-budget-delete", project, other.pk)).status_code == 404
    assert signed_in.post(url("settings-budget-update", project, other.pk), form()).status_code == 404
    assert "Theirs" not in signed_in.get(url("settings", project) + f"?budget={other.pk}").content.decode()
    assert Budget.objects.filter(pk=other.pk).exists()
