"""Reads of budgets: spend in a period (live from Redis, exact from the span table) and status."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import redis
from django.db.models import Sum

from apps.budgets.models import Budget
from apps.budgets.periods import Window, window_of
from apps.budgets.spend import from_micros, key_field, project_field, spend_counted, to_micros


def budget_field(budget: Budget) -> str:
    """The spend counter a budget reads: its key's, or its project's."""
    return key_field(budget.api_key_id) if budget.api_key_id else project_field(budget.project_id)


def spend_exact(
    window: Window, *, project_ids: Iterable[uuid.UUID], key_ids: Iterable[uuid.UUID] = ()
) -> dict[str, int]:
    """Micro-dollars of traced cost received in the window, from the span table, per
    counter field (`p:<project>` for each project, `k:<key>` for each key)."""
    from apps.traces.models import Span  # the store's model; budgets only read it

    project_ids, key_ids = list(set(project_ids)), list(set(key_ids))
    spans = Span.objects.filter(received_at__gte=window.start, received_at__lt=window.end)
    exact: dict[str, int] = {project_field(p): 0 for p in project_ids}
    exact.update({key_field(k): 0 for k in key_ids})
    if project_ids:
        rows = (
            spans.filter(project_id__in=project_ids, cost__gt=0)
            .values("project_id")
            .annotate(total=Sum("cost"))
            .values_list("project_id", "total")
        )
        exact.update({project_field(p): to_micros(total) for p, total in rows})
    if key_ids:
        rows = (
            spans.filter(batch__api_key_id__in=key_ids, cost__gt=0)
            .values("batch__api_key_id")
            .annotate(total=Sum("cost"))
            .values_list("batch__api_key_id", "total")
        )
        exact.update({key_field(k): to_micros(total) for k, total in rows})
    return exact


@dataclass(frozen=True)
class BudgetStatus:
    spend_usd: Decimal
    percent_used: float
    period_start: datetime
    resets_at: datetime
    exhausted: bool


def status_of(budget: Budget, spend_micros: int, window: Window) -> BudgetStatus:
    spend = from_micros(spend_micros)
    amount = Decimal(budget.amount_usd)
    percent = float(round(spend * 100 / amount, 2)) if amount > 0 else 0.0
    return BudgetStatus(
        spend_usd=spend,
        percent_used=percent,
        period_start=window.start,
        resets_at=window.end,
        exhausted=amount > 0 and spend >= amount,
    )


def budgets_status(budgets: list[Budget], now: datetime | None = None) -> dict[uuid.UUID, BudgetStatus]:
    """Each budget's spend in its current period: the live Redis counters (one read per
    period kind), or the span table's sums when Redis cannot be read."""
    from apps.core.redis_cache import redis_client

    by_period: dict[str, list[Budget]] = {}
    for budget in budgets:
        by_period.setdefault(budget.period, []).append(budget)
    found: dict[uuid.UUID, BudgetStatus] = {}
    for period, members in by_period.items():
        window = window_of(period, now)
        fields = sorted({budget_field(b) for b in members})
        try:
            counted = spend_counted(window, fields, redis_client())
        except redis.RedisError:
            counted = spend_exact(
                window,
                project_ids=[b.project_id for b in members if not b.api_key_id],
                key_ids=[b.api_key_id for b in members if b.api_key_id],
            )
        for budget in members:
            found[budget.pk] = status_of(budget, counted.get(budget_field(budget), 0), window)
    return found


def budgets_of(project_id: uuid.UUID | str):
    return Budget.objects.for_project(project_id).select_related("api_key").order_by("created_at", "id")
