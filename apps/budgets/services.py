"""Writes of budgets: create, change, delete (validated and audited), and the periodic
evaluation: reconcile spend from the span table, send threshold alerts, publish hard stops."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import redis
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import actor_fields, audit_record
from apps.budgets.alerts import alert_send
from apps.budgets.models import Budget, BudgetAlert, Period
from apps.budgets.periods import window_of
from apps.budgets.selectors import budget_field, spend_exact, status_of
from apps.budgets.spend import Exhausted, exhausted_drop, exhausted_publish, spend_set
from apps.core import crypto
from apps.core.redis_cache import redis_client
from apps.ingest.webhooks import new_secret
from apps.keys.models import ApiKey
from apps.routing.errors import ConfigError

logger = logging.getLogger(__name__)

MAX_THRESHOLDS = 10
MAX_EMAILS = 20
MAX_AMOUNT = Decimal("999999999999.99")
MAX_ATTEMPTS = 20  # sends of one alert within its period before it is given up
FIELDS = (
    "name",
    "api_key_id",
    "amount_usd",
    "period",
    "thresholds",
    "alert_emails",
    "alert_webhook_url",
    "hard_stop",
    "enabled",
)


class BudgetError(Exception):
    """Bad input for a budget: `field` names it (as the API and the form name it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


# --- validation ------------------------------------------------------------------------------------


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BudgetError("name", "must be a non-empty string")
    if len(value) > 200:
        raise BudgetError("name", "is longer than 200 characters")
    return value.strip()


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise BudgetError("amount_usd", "must be a number")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise BudgetError("amount_usd", "must be a number") from exc
    if not amount.is_finite():
        raise BudgetError("amount_usd", "must be a number")
    if amount <= 0:
        raise BudgetError("amount_usd", "must be greater than 0")
    if amount > MAX_AMOUNT:
        raise BudgetError("amount_usd", f"must be at most {MAX_AMOUNT}")
    if amount != amount.quantize(Decimal("0.01")):
        raise BudgetError("amount_usd", "must have at most 2 decimal places")
    return amount.quantize(Decimal("0.01"))


def _period(value: Any) -> str:
    if value not in Period.values:
        raise BudgetError("period", f"must be one of {', '.join(Period.values)}")
    return value


def _thresholds(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise BudgetError("thresholds", "must be a non-empty list of percents")
    if len(value) > MAX_THRESHOLDS:
        raise BudgetError("thresholds", f"must hold at most {MAX_THRESHOLDS} percents")
    seen: set[int] = set()
    for index, percent in enumerate(value):
        where = f"thresholds[{index}]"
        if not isinstance(percent, int) or isinstance(percent, bool):
            raise BudgetError(where, "must be an integer percent")
        if not 1 <= percent <= 1000:
            raise BudgetError(where, "must be between 1 and 1000")
        if percent in seen:
            raise BudgetError(where, f"{percent} is listed twice")
        seen.add(percent)
    return sorted(seen)


def _emails(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise BudgetError("alert_emails", "must be a list of email addresses")
    if len(value) > MAX_EMAILS:
        raise BudgetError("alert_emails", f"must hold at most {MAX_EMAILS} addresses")
    emails: list[str] = []
    for index, email in enumerate(value):
        where = f"alert_emails[{index}]"
        if not isinstance(email, str):
            raise BudgetError(where, "must be a string")
        try:
            validate_email(email.strip())
        except ValidationError as exc:
            raise BudgetError(where, f"{email!r} is not a valid email address") from exc
        if email.strip() not in emails:
            emails.append(email.strip())
    return emails


def _webhook_url(value: Any) -> str:
    from apps.destinations.types import check_url

    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise BudgetError("alert_webhook_url", "must be a string")
    value = value.strip()
    if len(value) > 500:
        raise BudgetError("alert_webhook_url", "is longer than 500 characters")
    try:
        check_url(value, where="alert_webhook_url")
    except ConfigError as exc:
        raise BudgetError("alert_webhook_url", exc.message) from exc
    return value


def _api_key(project_id: uuid.UUID, value: Any) -> uuid.UUID | None:
    if value is None or value == "":
        return None
    try:
        key_id = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError as exc:
        raise BudgetError("api_key", f"{value!r} is not a valid UUID") from exc
    if not ApiKey.objects.for_project(project_id).filter(pk=key_id).exists():
        raise BudgetError("api_key", "no such key in this project")
    return key_id


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BudgetError(field, "must be true or false")
    return value


def _cleaned(project_id: uuid.UUID, values: dict[str, Any]) -> dict[str, Any]:
    """Validated values of the given fields, in FIELDS order (so the first error is stable)."""
    cleaners = {
        "name": _name,
        "amount_usd": _amount,
        "period": _period,
        "thresholds": _thresholds,
        "alert_emails": _emails,
        "alert_webhook_url": _webhook_url,
        "api_key_id": lambda v: _api_key(project_id, v),
        "hard_stop": lambda v: _bool("hard_stop", v),
        "enabled": lambda v: _bool("enabled", v),
    }
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise BudgetError(unknown[0], "is not a budget field")
    return {name: cleaners[name](values[name]) for name in FIELDS if name in values}


# --- writes ---------------------------------------------------------------------------------------


def budget_create(*, project_id: uuid.UUID, actor: Any = None, **values: Any) -> tuple[Budget, str]:
    """A new budget and its webhook signing secret (returned once, stored encrypted)."""
    for required in ("name", "amount_usd"):
        if required not in values:
            raise BudgetError(required, "is required")
    cleaned = _cleaned(project_id, values)
    secret = new_secret()
    budget = Budget.objects.create(
        project_id=project_id, webhook_secret_encrypted=crypto.encrypt(secret), **cleaned
    )
    audit_record(
        action="budget.created",
        organization_id=None,
        project_id=project_id,
        **actor_fields(actor),
        target_type="budget",
        target_id=budget.pk,
        details=_audit_details(budget),
    )
    return budget, secret


def budget_update(budget: Budget, *, actor: Any = None, **values: Any) -> Budget:
    cleaned = _cleaned(budget.project_id, values)
    changed = sorted(name for name, value in cleaned.items() if getattr(budget, name) != value)
    for name, value in cleaned.items():
        setattr(budget, name, value)
    if changed:
        budget.save()
        audit_record(
            action="budget.updated",
            organization_id=None,
            project_id=budget.project_id,
            **actor_fields(actor),
            target_type="budget",
            target_id=budget.pk,
            details={"name": budget.name, "changed": [c.removesuffix("_id") for c in changed]},
        )
        exhausted_drop(budget.pk, redis_client())  # the next evaluation publishes it again if still spent
    return budget


def budget_delete(budget: Budget, *, actor: Any = None) -> None:
    budget_id, project_id, name = budget.pk, budget.project_id, budget.name
    budget.delete()
    audit_record(
        action="budget.deleted",
        organization_id=None,
        project_id=project_id,
        **actor_fields(actor),
        target_type="budget",
        target_id=budget_id,
        details={"name": name},
    )
    exhausted_drop(budget_id, redis_client())


def budget_webhook_secret(budget: Budget) -> str:
    return crypto.decrypt(budget.webhook_secret_encrypted)


def _audit_details(budget: Budget) -> dict[str, Any]:
    return {
        "name": budget.name,
        "amount_usd": str(budget.amount_usd),
        "period": budget.period,
        "api_key": str(budget.api_key_id) if budget.api_key_id else None,
        "hard_stop": budget.hard_stop,
        "enabled": budget.enabled,
    }


# --- evaluation -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationReport:
    evaluated: int
    alerts_sent: int
    alerts_failed: int
    exhausted: dict[str, Exhausted]


def budgets_evaluate(now: datetime | None = None) -> EvaluationReport:
    """Every enabled budget: its exact spend this period from the span table (written back
    to the Redis counters), alerts for thresholds newly crossed (once per period, failed
    sends retried on the next run), and the spent hard-stop budgets published for the proxy."""
    now = now or datetime.now(UTC)
    budgets = list(Budget.objects.filter(enabled=True).select_related("project").order_by("created_at"))
    exhausted: dict[str, Exhausted] = {}
    sent = failed = 0
    by_period: dict[str, list[Budget]] = {}
    for budget in budgets:
        by_period.setdefault(budget.period, []).append(budget)
    for period, members in by_period.items():
        window = window_of(period, now)
        exact = spend_exact(
            window,
            project_ids=[b.project_id for b in members if not b.api_key_id],
            key_ids=[b.api_key_id for b in members if b.api_key_id],
        )
        try:
            spend_set(window, exact, redis_client())
        except redis.RedisError as exc:
            logger.warning("could not correct budget spend counters in Redis: %s", exc)
        for budget in members:
            status = status_of(budget, exact.get(budget_field(budget), 0), window)
            _alerts_record(budget, window.start, status.spend_usd)
            if budget.hard_stop and status.exhausted:
                field = budget_field(budget)
                entry = Exhausted(
                    budget_id=str(budget.pk),
                    name=budget.name,
                    amount_usd=f"{budget.amount_usd:.2f}",
                    period=budget.period,
                    resets_at=window.end.timestamp(),
                    scope="key" if budget.api_key_id else "project",
                )
                current = exhausted.get(field)
                if current is None or entry.resets_at > current.resets_at:  # the longest wait wins
                    exhausted[field] = entry
            ok, bad = _alerts_send(budget, window, status)
            sent, failed = sent + ok, failed + bad
    try:
        exhausted_publish(exhausted, redis_client())
    except redis.RedisError as exc:
        logger.warning("could not publish spent hard-stop budgets: %s", exc)
    return EvaluationReport(
        evaluated=len(budgets), alerts_sent=sent, alerts_failed=failed, exhausted=exhausted
    )


def _alerts_record(budget: Budget, period_start: datetime, spend: Decimal) -> None:
    """One row per threshold reached this period; the unique constraint makes it once."""
    for threshold in budget.thresholds:
        if spend * 100 < threshold * budget.amount_usd:
            break
        try:
            with transaction.atomic():
                BudgetAlert.objects.create(
                    budget=budget, period_start=period_start, threshold=threshold, spend_usd=spend
                )
        except IntegrityError:
            pass  # recorded by an earlier run


def _alerts_send(budget: Budget, window, status) -> tuple[int, int]:
    """Send this period's alerts not sent yet, together (one email, one webhook request naming
    the highest threshold and every one it covers). Returns (alerts sent, alerts failed)."""
    with transaction.atomic():
        pending = list(
            BudgetAlert.objects.select_for_update(skip_locked=True)
            .filter(budget=budget, period_start=window.start, sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
            .order_by("threshold")
        )
        if not pending:
            return 0, 0
        need_email = bool(budget.alert_emails) and any(a.email_sent_at is None for a in pending)
        need_webhook = bool(budget.alert_webhook_url) and any(a.webhook_sent_at is None for a in pending)
        outcome = alert_send(
            budget,
            thresholds=[a.threshold for a in pending],
            message_id=f"msg_{pending[-1].pk.hex}",
            status=status,
            window=window,
            email=need_email,
            webhook=need_webhook,
        )
        moment = timezone.now()
        for alert in pending:
            alert.attempts += 1
            if need_email and outcome.email_ok:
                alert.email_sent_at = moment
            if need_webhook and outcome.webhook_ok:
                alert.webhook_sent_at = moment
            email_done = not budget.alert_emails or alert.email_sent_at is not None
            webhook_done = not budget.alert_webhook_url or alert.webhook_sent_at is not None
            if email_done and webhook_done:
                alert.sent_at = moment
            alert.last_error = outcome.error
            alert.save(
                update_fields=[
                    "attempts",
                    "email_sent_at",
                    "webhook_sent_at",
                    "sent_at",
                    "last_error",
                    "updated_at",
                ]
            )
        done = sum(1 for a in pending if a.sent_at is not None)
        return done, len(pending) - done
