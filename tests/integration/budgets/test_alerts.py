"""Threshold alerts: email and a signed webhook, once per threshold and period; failures retried."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.core import mail
from prometheus_client import REGISTRY
from standardwebhooks import Webhook

from apps.budgets.models import BudgetAlert
from apps.budgets.periods import window_of
from apps.budgets.services import budgets_evaluate
from apps.budgets.spend import EXHAUSTED_KEY, budget_block
from apps.traces.models import Span
from tests.integration.budgets.conftest import ingest_costs
from workers.tasks.budgets import evaluate_budgets

pytestmark = pytest.mark.django_db


def create(api, **fields) -> dict:
    body = {"name": "Team cap", "amount_usd": "10.00", "alert_emails": ["ops@example.com", "cto@example.com"]}
    response = api.post("/v1/budgets", {**body, **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def sample(channel: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("untrace_budget_alerts_total", {"channel": channel, "outcome": outcome})
    return value or 0.0


def verified(receiver, secret: str) -> list[dict]:
    """Every request's body, after checking its Standard Webhooks signature."""
    bodies = []
    for request in receiver.requests:
        headers = {k: request["headers"][k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        bodies.append(Webhook(secret).verify(request["body"], headers))
    return bodies


def test_each_threshold_fires_once_per_period(api, api_key, receiver):
    created = create(api, alert_webhook_url=receiver.url)
    secret = created["webhook_secret"]

    ingest_costs(api, api_key.secret, [4.0])  # 40 %
    evaluate_budgets()
    assert mail.outbox == [] and receiver.requests == []

    ingest_costs(api, api_key.secret, [1.5])  # 55 %
    evaluate_budgets()
    evaluate_budgets()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@example.com", "cto@example.com"]
    assert message.subject == "Untrace: budget “Team cap” reached 50% ($5.500000 spent)"
    assert "has reached 50% of $10.00: $5.500000 of traced LLM cost" in message.body
    bodies = verified(receiver, secret)
    assert len(bodies) == 1
    window = window_of("monthly")
    assert bodies[0]["type"] == "budget.threshold_crossed"
    assert bodies[0]["data"] == {
        "budget": {
            "id": created["id"],
            "name": "Team cap",
            "project": str(api_key.project_id),
            "api_key": None,
            "amount_usd": "10.00",
            "period": "monthly",
            "hard_stop": False,
        },
        "threshold": 50,
        "thresholds": [50],
        "spend_usd": "5.500000",
        "percent_used": 55.0,
        "exhausted": False,
        "period_start": window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resets_at": window.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }

    ingest_costs(api, api_key.secret, [3.0])  # 85 %
    evaluate_budgets()
    ingest_costs(api, api_key.secret, [1.5])  # 100 %
    evaluate_budgets()
    evaluate_budgets()

    assert [m.subject.split("reached ")[1].split("%")[0] for m in mail.outbox] == ["50", "80", "100"]
    assert [b["data"]["threshold"] for b in verified(receiver, secret)] == [50, 80, 100]
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 3
    alerts = BudgetAlert.objects.filter(budget_id=created["id"]).order_by("threshold")
    assert [(a.threshold, a.period_start, a.sent_at is not None) for a in alerts] == [
        (50, window.start, True),
        (80, window.start, True),
        (100, window.start, True),
    ]
    assert [str(a.spend_usd) for a in alerts] == ["5.50000000", "8.50000000", "10.00000000"]


def test_thresholds_crossed_together_send_one_alert(api, api_key, receiver):
    created = create(api, alert_webhook_url=receiver.url, thresholds=[50, 80, 100, 150])
    ingest_costs(api, api_key.secret, [12.0])
    evaluate_budgets()

    assert len(mail.outbox) == 1
    assert "reached 100%" in mail.outbox[0].subject
    (body,) = verified(receiver, created["webhook_secret"])
    assert body["data"]["threshold"] == 100
    assert body["data"]["thresholds"] == [50, 80, 100]
    assert body["data"]["exhausted"] is True
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [50, 80, 100]


def test_a_failed_webhook_is_retried_on_the_next_run_and_the_email_is_not_repeated(api, api_key, receiver):
    created = create(api, alert_webhook_url=receiver.url)
    ingest_costs(api, api_key.secret, [6.0])

    failed_before = sample("webhook", "failed")
    receiver.status = 500
    report = budgets_evaluate()
    assert sample("webhook", "failed") == failed_before + 1
    assert report.alerts_sent == 0 and report.alerts_failed == 1
    alert = BudgetAlert.objects.get(budget_id=created["id"])
    assert alert.sent_at is None and alert.email_sent_at is not None and alert.webhook_sent_at is None
    assert alert.last_error == "webhook: RuntimeError: the webhook answered 500"
    assert len(mail.outbox) == 1

    receiver.status = 204
    report = budgets_evaluate()
    assert report.alerts_sent == 1 and report.alerts_failed == 0
    alert.refresh_from_db()
    assert alert.sent_at is not None and alert.attempts == 2 and alert.last_error == ""
    assert len(mail.outbox) == 1
    assert len(receiver.requests) == 2
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1  # the same message id on the retry, so a receiver can de-duplicate
    assert len(verified(receiver, created["webhook_secret"])) == 2

    budgets_evaluate()
    assert len(receiver.requests) == 2


def test_an_unreachable_webhook_never_raises(api, api_key):
    create(api, alert_webhook_url="http://127.0.0.1:9/nothing-listens", alert_emails=[])
    ingest_costs(api, api_key.secret, [6.0])
    report = budgets_evaluate()
    assert report.alerts_failed == 1
    assert BudgetAlert.objects.get().last_error.startswith("webhook: ConnectError")


def test_a_new_period_fires_again(api, api_key):
    created = create(api)
    ingest_costs(api, api_key.secret, [6.0])
    evaluate_budgets()
    assert len(mail.outbox) == 1

    next_month = window_of("monthly").end + timedelta(days=2)
    Span.objects.update(received_at=next_month)
    budgets_evaluate(now=next_month)
    assert len(mail.outbox) == 2
    starts = sorted(
        BudgetAlert.objects.filter(budget_id=created["id"]).values_list("period_start", flat=True)
    )
    assert starts == [window_of("monthly").start, window_of("monthly", next_month).start]


def test_disabled_budgets_are_not_evaluated(api, api_key):
    created = create(api, hard_stop=True)
    api.patch(f"/v1/budgets/{created['id']}", {"enabled": False}, format="json")
    ingest_costs(api, api_key.secret, [20.0])
    report = budgets_evaluate()
    assert report.evaluated == 0 and mail.outbox == [] and report.exhausted == {}


def test_spent_hard_stop_budgets_are_published_for_the_proxy(api, project, api_key):
    stop = create(api, hard_stop=True, alert_emails=[], name="Stop")
    create(api, hard_stop=False, amount_usd="1.00", alert_emails=[], name="Soft")
    ingest_costs(api, api_key.secret, [9.0])

    budgets_evaluate()
    assert budget_block(project.pk, api_key.pk) is None  # 90 % of the hard-stop budget

    ingest_costs(api, api_key.secret, [1.0])
    report = budgets_evaluate()
    assert set(report.exhausted) == {f"p:{project.pk}"}
    blocked = budget_block(project.pk, api_key.pk)
    assert blocked is not None and blocked.budget_id == stop["id"]
    window = window_of("monthly")
    assert blocked.resets_at == window.end.timestamp()
    assert blocked.message() == (
        'The monthly budget "Stop" of this project ($10.00) is spent; proxied LLM calls are refused '
        f"until it resets at {window.end.strftime('%Y-%m-%dT%H:%M:%SZ')}."
    )
    # Once the period is over the entry no longer blocks, even before the next evaluation.
    assert budget_block(project.pk, api_key.pk, now=window.end.timestamp() + 1) is None

    # Raising the amount lifts the stop at once.
    api.patch(f"/v1/budgets/{stop['id']}", {"amount_usd": "50"}, format="json")
    assert budget_block(project.pk, api_key.pk) is None
    client = redis.Redis.from_url(settings.REDIS_URL)
    assert client.hgetall(EXHAUSTED_KEY) == {}
    client.close()


def test_the_webhook_payload_is_json_with_the_standard_headers(api, api_key, receiver):
    create(api, alert_webhook_url=receiver.url, alert_emails=[])
    ingest_costs(api, api_key.secret, [5.0])
    before = int(datetime.now(UTC).timestamp())
    evaluate_budgets()
    (request,) = receiver.requests
    assert request["path"] == "/hooks/budget"
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["webhook-id"].startswith("msg_")
    assert int(request["headers"]["webhook-timestamp"]) >= before
    assert request["headers"]["webhook-signature"].startswith("v1,")
    assert json.loads(request["body"])["data"]["threshold"] == 50


def test_the_webhook_is_guarded_when_it_connects(api, api_key, receiver, settings):
    create(api, alert_webhook_url=receiver.url, alert_emails=[])  # saved while private addresses were allowed
    ingest_costs(api, api_key.secret, [6.0])
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = False

    report = budgets_evaluate()
    assert report.alerts_failed == 1 and receiver.requests == []
    assert BudgetAlert.objects.get().last_error.startswith("webhook: AddressNotAllowed")
