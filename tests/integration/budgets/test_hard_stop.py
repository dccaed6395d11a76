"""Hard stop: a real proxy (uvicorn on the test database and this run's Redis) refuses the LLM
calls of a project or key whose hard-stop budget is spent, until the period resets."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from django.conf import settings

from apps.budgets.periods import window_of
from apps.budgets.selectors import budgets_status
from apps.budgets.services import budget_create, budgets_evaluate
from apps.traces.models import ModelPriceOverride, Span
from tests.factories import ApiKeyFactory, ProjectFactory
from tests.fakes.llm_upstream import FakeState, fake_upstream
from tests.integration.budgets.conftest import ingest_costs
from tests.live import stack_env, wait_for, web_server

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


@pytest.fixture(scope="module")
def proxy(django_db_setup, tmp_path_factory) -> Iterator[tuple[str, FakeState]]:
    var_dir = str(tmp_path_factory.mktemp("budget-proxy-var"))
    with fake_upstream() as (fake, state):
        env = stack_env(redis_url=settings.REDIS_URL)
        env.update(UNTRACE_OPENAI_UPSTREAM=fake, UNTRACE_VAR_DIR=var_dir, UNTRACE_PROXY_RETRY_MAX_WAIT="1")
        with web_server(env) as base:
            yield base, state


def call(base: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/proxy/openai/v1/chat/completions",
        json=CHAT,
        headers={"X-Untrace-Key": key, "Authorization": "Bearer sk-test-provider"},
        timeout=10,
    )


def refused(base: str, key: str) -> bool:
    return call(base, key).status_code == 429


def expensive(project) -> None:
    """$1 per prompt token: one proxied call (12 prompt, 5 completion tokens) costs $17."""
    ModelPriceOverride.objects.create(
        organization=project.organization,
        model="gpt-4o-mini",
        input_per_million=Decimal(1_000_000),
        output_per_million=Decimal(1_000_000),
    )


def test_a_spent_project_budget_stops_proxied_calls_until_the_period_resets(proxy):
    base, state = proxy
    project = ProjectFactory()
    key = ApiKeyFactory(project=project)
    expensive(project)
    budget, _ = budget_create(project_id=project.pk, name="Prod LLM", amount_usd="20", hard_stop=True)

    def stored(count: int):
        return lambda: Span.objects.filter(project=project).count() == count

    first = call(base, key.secret)
    assert first.status_code == 200, first.text
    assert wait_for(stored(1), timeout=30)
    assert budgets_evaluate().exhausted == {}  # $17 of $20: not spent
    assert call(base, key.secret).status_code == 200  # $34 now, but not evaluated yet
    assert wait_for(stored(2), timeout=30)
    # The proxy's trace writer counted the cost in Redis as it stored the spans.
    assert budgets_status([budget])[budget.pk].spend_usd == Decimal("34")
    report = budgets_evaluate()
    assert set(report.exhausted) == {f"p:{project.pk}"}
    assert wait_for(lambda: refused(base, key.secret), timeout=30)

    sent_upstream = len(state.requests)
    response = call(base, key.secret)
    assert len(state.requests) == sent_upstream  # refused here: the provider never saw it
    end = window_of("monthly").end
    resets = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert response.status_code == 429
    assert response.headers["x-untrace-error"] == "budget_exceeded"
    assert response.headers["content-type"] == "application/json"
    retry_after = int(response.headers["retry-after"])
    assert 0 < retry_after <= 31 * 86400
    assert response.json() == {
        "error": {
            "code": "budget_exceeded",
            "message": f'The monthly budget "Prod LLM" of this project ($20.00) is spent; '
            f"proxied LLM calls are refused until it resets at {resets}.",
            "details": {
                "budget_id": str(budget.pk),
                "budget": "Prod LLM",
                "amount_usd": "20.00",
                "period": "monthly",
                "resets_at": resets,
            },
        }
    }

    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    refusals = [
        line for line in metrics.splitlines() if line.startswith("untrace_proxy_budget_refusals_total ")
    ]
    assert refusals and float(refusals[0].split()[1]) >= 1

    # Ingest is never stopped by a budget.
    from rest_framework.test import APIClient

    ingest_costs(APIClient(), key.secret, [1.0])

    # The next period: nothing spent in it yet, so calls go through again.
    budgets_evaluate(now=end)
    assert wait_for(lambda: call(base, key.secret).status_code == 200, timeout=30)


def test_a_key_budget_stops_only_that_key(proxy):
    base, _ = proxy
    project = ProjectFactory()
    limited, other = ApiKeyFactory(project=project), ApiKeyFactory(project=project)
    expensive(project)
    budget_create(
        project_id=project.pk,
        name="Batch job",
        amount_usd="10",
        period="daily",
        api_key_id=limited.pk,
        hard_stop=True,
    )
    assert call(base, limited.secret).status_code == 200

    def spent() -> bool:
        return set(budgets_evaluate().exhausted) == {f"k:{limited.pk}"}

    assert wait_for(spent, timeout=30)
    assert wait_for(lambda: refused(base, limited.secret), timeout=30)
    response = call(base, limited.secret)
    assert response.json()["error"]["message"].startswith(
        'The daily budget "Batch job" of this API key ($10.00) is spent;'
    )
    assert int(response.headers["retry-after"]) <= 86400
    assert call(base, other.secret).status_code == 200


def test_without_hard_stop_a_spent_budget_never_blocks(proxy):
    base, _ = proxy
    project = ProjectFactory()
    key = ApiKeyFactory(project=project)
    expensive(project)
    budget_create(project_id=project.pk, name="Watch only", amount_usd="1", hard_stop=False)
    assert call(base, key.secret).status_code == 200

    def evaluated_spent() -> bool:
        from apps.budgets.models import BudgetAlert

        budgets_evaluate()
        return BudgetAlert.objects.filter(budget__project=project, threshold=100).exists()

    assert wait_for(evaluated_spent, timeout=30)
    for _ in range(3):
        assert call(base, key.secret).status_code == 200
