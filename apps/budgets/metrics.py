"""Budget metrics on /metrics."""

from __future__ import annotations

from prometheus_client import Counter

BUDGET_ALERTS = Counter(
    "untrace_budget_alerts_total",
    "Budget alerts sent or failed, by channel (email, webhook) and outcome (sent, failed).",
    ["channel", "outcome"],
)
BUDGET_REFUSALS = Counter(
    "untrace_proxy_budget_refusals_total",
    "Proxied calls answered 429 budget_exceeded because a hard-stop budget is spent.",
)
