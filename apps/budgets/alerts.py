"""Budget alerts: one email to the budget's addresses and one signed webhook request.

The webhook body is JSON (`{"type": "budget.threshold_crossed", ...}`), signed per
Standard Webhooks with the budget's own secret (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), the scheme signed-webhook ingest verifies; `webhook-id` is
the same on every retry of one alert, so a receiver can de-duplicate. Failures are
returned, never raised: the evaluation task records them and tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from django.conf import settings
from django.core.mail import send_mail
from standardwebhooks import Webhook

from apps.budgets.metrics import BUDGET_ALERTS
from apps.core import crypto
from apps.core.outbound import GuardedHTTPTransport

if TYPE_CHECKING:
    from apps.budgets.models import Budget
    from apps.budgets.periods import Window
    from apps.budgets.selectors import BudgetStatus

logger = logging.getLogger(__name__)
EVENT_TYPE = "budget.threshold_crossed"


@dataclass(frozen=True)
class SendOutcome:
    email_ok: bool
    webhook_ok: bool
    error: str = ""


def alert_payload(
    budget: Budget, *, thresholds: list[int], status: BudgetStatus, window: Window
) -> dict[str, Any]:
    return {
        "type": EVENT_TYPE,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": {
            "budget": {
                "id": str(budget.pk),
                "name": budget.name,
                "project": str(budget.project_id),
                "api_key": str(budget.api_key_id) if budget.api_key_id else None,
                "amount_usd": f"{budget.amount_usd:.2f}",
                "period": budget.period,
                "hard_stop": budget.hard_stop,
            },
            "threshold": max(thresholds),
            "thresholds": sorted(thresholds),
            "spend_usd": str(status.spend_usd),
            "percent_used": status.percent_used,
            "exhausted": status.exhausted,
            "period_start": window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "resets_at": window.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def _email_text(budget: Budget, payload: dict[str, Any]) -> tuple[str, str]:
    data = payload["data"]
    whose = "API key" if budget.api_key_id else "project"
    subject = f"Untrace: budget “{budget.name}” reached {data['threshold']}% (${data['spend_usd']} spent)"
    lines = [
        f"The {budget.period} budget “{budget.name}” of this {whose} has reached {data['threshold']}% "
        f"of ${data['budget']['amount_usd']}: ${data['spend_usd']} of traced LLM cost since "
        f"{data['period_start']} ({data['percent_used']}%).",
        "",
    ]
    if budget.hard_stop and data["exhausted"]:
        lines.append(
            f"Hard stop is on: proxied LLM calls answer 429 budget_exceeded until the period resets at "
            f"{data['resets_at']}. Ingest of traces is not affected."
        )
    else:
        lines.append(f"The period resets at {data['resets_at']}.")
    lines += ["", f"Budgets are in the project's settings at {settings.UNTRACE_PUBLIC_URL}."]
    return subject, "\n".join(lines)


def _webhook_send(budget: Budget, body: bytes, message_id: str) -> None:
    """POST the signed body (raises on any failure, a refused address and a non-2xx answer included).
    The connection goes through the outbound guard: the host's addresses are checked as it connects."""
    secret = crypto.decrypt(budget.webhook_secret_encrypted)
    at = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": "Untrace-Budgets/1.0",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body.decode()),
    }
    timeout = settings.UNTRACE_BUDGET_WEBHOOK_TIMEOUT
    with httpx.Client(timeout=timeout, follow_redirects=False, transport=GuardedHTTPTransport()) as client:
        response = client.post(budget.alert_webhook_url, content=body, headers=headers)
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"the webhook answered {response.status_code}")


def alert_send(
    budget: Budget,
    *,
    thresholds: list[int],
    message_id: str,
    status: BudgetStatus,
    window: Window,
    email: bool,
    webhook: bool,
) -> SendOutcome:
    """Send on the channels asked for; what failed is logged and reported, never raised."""
    payload = alert_payload(budget, thresholds=thresholds, status=status, window=window)
    errors: list[str] = []
    email_ok = webhook_ok = False
    if email:
        subject, text = _email_text(budget, payload)
        try:
            send_mail(subject, text, None, list(budget.alert_emails))
            email_ok = True
            BUDGET_ALERTS.labels("email", "sent").inc()
        except Exception as exc:  # noqa: BLE001 - mail trouble is retried on the next run
            logger.warning("could not email the alert of budget %s: %s", budget.pk, exc)
            BUDGET_ALERTS.labels("email", "failed").inc()
            errors.append(f"email: {exc.__class__.__name__}: {exc}")
    if webhook:
        try:
            _webhook_send(budget, orjson.dumps(payload), message_id)
            webhook_ok = True
            BUDGET_ALERTS.labels("webhook", "sent").inc()
        except Exception as exc:  # noqa: BLE001 - any failure is retried on the next run
            logger.warning("could not send the webhook alert of budget %s: %s", budget.pk, exc)
            BUDGET_ALERTS.labels("webhook", "failed").inc()
            errors.append(f"webhook: {exc.__class__.__name__}: {exc}"[:1000])
    return SendOutcome(email_ok=email_ok, webhook_ok=webhook_ok, error="; ".join(errors))
