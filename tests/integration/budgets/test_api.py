"""`/v1/budgets`: create, list, retrieve, update, delete; the secret shown once; exact 400 bodies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.budgets.models import Budget
from apps.budgets.services import budget_webhook_secret
from tests.factories import ApiKeyFactory, ProjectFactory
from tests.integration.ingest.helpers import error_of

pytestmark = pytest.mark.django_db


def create(api, **fields):
    body = {"name": "Monthly cap", "amount_usd": "100.00", **fields}
    return api.post("/v1/budgets", body, format="json")


def month_bounds() -> tuple[str, str]:
    now = datetime.now(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_create_returns_the_budget_its_status_and_the_secret_once(api, project):
    response = create(
        api,
        thresholds=[100, 50, 80],
        alert_emails=["ops@example.com"],
        alert_webhook_url="https://hooks.example.com/budget",
        hard_stop=True,
    )

    assert response.status_code == 201, response.content
    body = response.json()
    start, end = month_bounds()
    budget = Budget.objects.get(pk=body["id"])
    assert body == {
        "id": str(budget.pk),
        "name": "Monthly cap",
        "api_key": None,
        "amount_usd": "100.00",
        "period": "monthly",
        "thresholds": [50, 80, 100],
        "alert_emails": ["ops@example.com"],
        "alert_webhook_url": "https://hooks.example.com/budget",
        "hard_stop": True,
        "enabled": True,
        "spend_usd": "0.000000",
        "percent_used": 0.0,
        "period_start": start,
        "resets_at": end,
        "exhausted": False,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "webhook_secret": body["webhook_secret"],
    }
    assert body["webhook_secret"].startswith("whsec_")
    assert budget_webhook_secret(budget) == body["webhook_secret"]
    assert body["webhook_secret"] not in budget.webhook_secret_encrypted  # encrypted at rest

    listed = api.get("/v1/budgets").json()["results"]
    retrieved = api.get(f"/v1/budgets/{budget.pk}").json()
    assert [b["id"] for b in listed] == [str(budget.pk)]
    assert "webhook_secret" not in listed[0] and "webhook_secret" not in retrieved
    assert body["webhook_secret"] not in api.get("/v1/budgets").content.decode()
    assert retrieved == {k: v for k, v in body.items() if k != "webhook_secret"}


def test_defaults_and_a_key_budget(api, project):
    key = ApiKeyFactory(project=project)
    response = create(api, api_key=str(key.pk), period="daily", amount_usd=5)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["api_key"] == str(key.pk)
    assert body["period"] == "daily"
    assert body["amount_usd"] == "5.00"
    assert body["thresholds"] == [50, 80, 100]
    assert body["alert_emails"] == [] and body["alert_webhook_url"] == ""
    assert body["hard_stop"] is False and body["enabled"] is True
    today = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
    assert body["period_start"] == today


def test_update_and_delete_are_audited(api, project, api_key):
    budget_id = create(api).json()["id"]

    response = api.patch(
        f"/v1/budgets/{budget_id}",
        {"amount_usd": "250.50", "hard_stop": True, "name": "Raised"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["amount_usd"] == "250.50"
    assert response.json()["name"] == "Raised" and response.json()["hard_stop"] is True
    assert "webhook_secret" not in response.json()

    assert api.delete(f"/v1/budgets/{budget_id}").status_code == 204
    assert not Budget.objects.filter(pk=budget_id).exists()
    assert api.get(f"/v1/budgets/{budget_id}").status_code == 404

    events = list(
        AuditEvent.objects.filter(project=project, target_type="budget")
        .order_by("created_at")
        .values_list("action", "details", "actor_key_id")
    )
    assert [e[0] for e in events] == ["budget.created", "budget.updated", "budget.deleted"]
    assert events[1][1] == {"name": "Raised", "changed": ["amount_usd", "hard_stop", "name"]}
    assert all(e[2] == api_key.pk for e in events)
    assert not any("whsec_" in str(e[1]) for e in events)


def test_another_projects_budget_is_not_found(api):
    other = ProjectFactory()
    other_key = ApiKeyFactory(project=other)
    client = APIClient()
    client.credentials(HTTP_X_UNTRACE_KEY=other_key.secret)
    budget_id = create(client).json()["id"]

    for method in ("get", "patch", "delete"):
        response = getattr(api, method)(f"/v1/budgets/{budget_id}", {"name": "x"}, format="json")
        error = error_of(response, 404, "not_found")
        assert error["message"] == f"No budget with id {budget_id}."
    assert api.get("/v1/budgets").json()["results"] == []
    assert Budget.objects.get(pk=budget_id).name == "Monthly cap"


def test_malformed_id_names_the_field(api):
    error = error_of(api.get("/v1/budgets/nope"), 400, "invalid_request")
    assert error == {
        "code": "invalid_request",
        "message": "id: 'nope' is not a valid UUID",
        "details": {"field": "id"},
    }


def test_scopes(project):
    reader = ApiKeyFactory(project=project, scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_X_UNTRACE_KEY=reader.secret)
    assert client.get("/v1/budgets").status_code == 200
    error = error_of(create(client), 403, "missing_scope")
    assert error["message"] == "This API key lacks the 'write' scope."
    anonymous = APIClient()
    error_of(anonymous.get("/v1/budgets"), 401, "unauthenticated")


def _field_error(field: str, message: str) -> dict:
    return {
        "error": {"code": "invalid_request", "message": f"{field}: {message}", "details": {"field": field}}
    }


def _drf_error(field: str, message: str, errors: dict) -> dict:
    return {
        "error": {
            "code": "invalid_request",
            "message": f"{field}: {message}",
            "details": {"field": field, "errors": errors},
        }
    }


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"amount_usd": 0}, _field_error("amount_usd", "must be greater than 0")),
        ({"amount_usd": "-5"}, _field_error("amount_usd", "must be greater than 0")),
        (
            {"amount_usd": "lots"},
            _drf_error(
                "amount_usd", "A valid number is required.", {"amount_usd": ["A valid number is required."]}
            ),
        ),
        (
            {"amount_usd": "1.005"},
            _drf_error(
                "amount_usd",
                "Ensure that there are no more than 2 decimal places.",
                {"amount_usd": ["Ensure that there are no more than 2 decimal places."]},
            ),
        ),
        ({"thresholds": [50, 0]}, _field_error("thresholds[1]", "must be between 1 and 1000")),
        ({"thresholds": [1001]}, _field_error("thresholds[0]", "must be between 1 and 1000")),
        ({"thresholds": [80, 50, 80]}, _field_error("thresholds[2]", "80 is listed twice")),
        ({"thresholds": []}, _field_error("thresholds", "must be a non-empty list of percents")),
        (
            {"thresholds": ["50"]},
            _drf_error(
                "thresholds[0]", "Must be an integer.", {"thresholds": {"0": ["Must be an integer."]}}
            ),
        ),
        (
            {"alert_emails": ["ops@example.com", "not-an-email"]},
            _field_error("alert_emails[1]", "'not-an-email' is not a valid email address"),
        ),
        (
            {"alert_webhook_url": "ftp://hooks.example.com/x"},
            _field_error("alert_webhook_url", "must be an http:// or https:// URL with a host"),
        ),
        (
            {"period": "weekly"},
            _drf_error(
                "period", '"weekly" is not a valid choice.', {"period": ['"weekly" is not a valid choice.']}
            ),
        ),
        (
            {"name": ""},
            _drf_error("name", "This field may not be blank.", {"name": ["This field may not be blank."]}),
        ),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) and "error" not in value else "",
)
def test_bad_input_names_the_field(api, fields, expected):
    response = create(api, **fields)
    assert response.status_code == 400, response.content
    assert response.json() == expected
    assert not Budget.objects.exists()


def test_a_key_of_another_project_is_refused(api):
    foreign = ApiKeyFactory(project=ProjectFactory())
    response = create(api, api_key=str(foreign.pk))
    assert response.status_code == 400
    assert response.json() == _field_error("api_key", "no such key in this project")

    response = create(api, api_key=str(uuid.uuid4()))
    assert response.json() == _field_error("api_key", "no such key in this project")


def test_a_private_webhook_url_is_refused_unless_allowed(api, settings):
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = False
    response = create(api, alert_webhook_url="http://10.0.0.5/hook")
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["details"] == {"field": "alert_webhook_url"}
    assert body["error"]["message"].startswith("alert_webhook_url: ")


def test_bad_update_changes_nothing(api):
    budget_id = create(api).json()["id"]
    response = api.patch(f"/v1/budgets/{budget_id}", {"amount_usd": "0", "name": "Renamed"}, format="json")
    assert response.status_code == 400
    assert response.json() == _field_error("amount_usd", "must be greater than 0")
    assert Budget.objects.get(pk=budget_id).name == "Monthly cap"
