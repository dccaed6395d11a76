"""Spend from traced cost: counted in Redis as spans are stored, made exact by the evaluation task."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from apps.budgets.periods import window_of
from apps.budgets.spend import project_field, spend_key
from apps.traces.models import Span
from tests.factories import ApiKeyFactory
from tests.integration.budgets.conftest import ingest_costs
from tests.integration.ingest.helpers import post
from workers.tasks.budgets import evaluate_budgets

pytestmark = pytest.mark.django_db


def budget(api, **fields) -> str:
    response = api.post("/v1/budgets", {"name": "cap", "amount_usd": "10", **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def shown(api, budget_id: str) -> dict:
    response = api.get(f"/v1/budgets/{budget_id}")
    assert response.status_code == 200, response.content
    return response.json()


def test_spend_accumulates_from_stored_spans(api, api_key):
    budget_id = budget(api)
    daily_id = budget(api, period="daily", amount_usd="4")

    ids = ingest_costs(api, api_key.secret, [1.25, 0.5])
    ingest_costs(api, api_key.secret, [0.00000125])
    # A re-sent span is not stored again, so it does not count again.
    again = post(
        api,
        "/v1/traces/batch",
        {"traces": [{"id": ids[0], "metrics": {"estimated_cost": 1.25}}]},
        api_key.secret,
    )
    assert again.status_code == 202
    # A span without cost adds nothing.
    post(api, "/v1/traces", {"id": "free-span", "model": "unknown-model"}, api_key.secret)

    monthly = shown(api, budget_id)
    assert monthly["spend_usd"] == "1.750001"
    assert monthly["percent_used"] == 17.5
    assert monthly["exhausted"] is False
    daily = shown(api, daily_id)
    assert daily["spend_usd"] == "1.750001"
    assert daily["percent_used"] == 43.75


def test_a_key_budget_counts_only_that_keys_spans(api, project, api_key):
    other = ApiKeyFactory(project=project)
    key_budget = budget(api, api_key=str(other.pk))
    project_budget = budget(api)

    ingest_costs(APIClient(), other.secret, [2.0])
    ingest_costs(APIClient(), api_key.secret, [3.0, 1.0])

    assert shown(api, key_budget)["spend_usd"] == "2.000000"
    assert shown(api, project_budget)["spend_usd"] == "6.000000"
    evaluate_budgets()
    assert shown(api, key_budget)["spend_usd"] == "2.000000"
    assert shown(api, project_budget)["spend_usd"] == "6.000000"


def test_the_evaluation_task_makes_spend_exact(api, project, api_key):
    budget_id = budget(api)
    ingest_costs(api, api_key.secret, [1.0, 2.5])
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = spend_key(window_of("monthly"))
    client.hset(key, project_field(project.pk), 123_000_000)  # drifted: a lost or doubled increment
    assert shown(api, budget_id)["spend_usd"] == "123.000000"

    evaluate_budgets()
    assert shown(api, budget_id)["spend_usd"] == "3.500000"

    client.delete(key)  # Redis lost everything
    assert shown(api, budget_id)["spend_usd"] == "0.000000"
    evaluate_budgets()
    assert shown(api, budget_id)["spend_usd"] == "3.500000"
    client.close()


def test_only_the_current_period_counts(api, project, api_key):
    budget_id = budget(api)
    ingest_costs(api, api_key.secret, [4.0, 1.0])
    start = window_of("monthly").start
    Span.objects.filter(project=project, cost=4).update(received_at=start - timedelta(seconds=1))

    evaluate_budgets()
    assert shown(api, budget_id)["spend_usd"] == "1.000000"


def test_without_redis_the_span_table_answers(api, api_key, monkeypatch):
    budget_id = budget(api)
    ingest_costs(api, api_key.secret, [0.75])

    def down():
        raise redis.ConnectionError("down")

    monkeypatch.setattr("apps.core.redis_cache.redis_client", down)
    assert shown(api, budget_id)["spend_usd"] == "0.750000"
