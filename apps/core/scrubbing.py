"""Secrets kept out of logs and Sentry events.

Credentials only reach a log line by accident (an exception quoting a header, a
URL with a token): every log record and every Sentry event passes through
`scrub_text`, which masks API keys of Untrace (by their checksummed pattern),
providers' and platforms' keys, bearer and basic credentials and webhook
secrets. Sentry's own denylist additionally drops the values of fields named like
secrets (headers, local variables, request data).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from apps.keys.key_format import KEY_PATTERN

MASK = "[redacted]"
_SECRETS = [
    KEY_PATTERN,
    re.compile(r"\bsk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{16,}"),  # OpenAI, Anthropic
    re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{10,}"),  # Stripe
    re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]{8,}"),  # Standard Webhooks / Stripe signing secrets
    re.compile(r"\b(?:pk|sk)-lf-[A-Za-z0-9\-]{8,}"),  # Langfuse
    re.compile(r"\blsv2_[a-z]{2}_[A-Za-z0-9_]{16,}"),  # LangSmith
]
_CREDENTIALS = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/\-]{8,}=*")  # the scheme is kept
# Field names whose values Sentry drops, on top of its defaults (header names lower-cased,
# with dashes as Sentry normalises them).
SENTRY_DENYLIST = [
    "x-untrace-key",
    "x_untrace_key",
    "http_x_untrace_key",
    "x-api-key",
    "openai_key",
    "anthropic_key",
    "provider_key",
    "secrets",
    "secret",
    "webhook_secret",
    "raw_key",
    "stripe-signature",
    "webhook-signature",
]


def scrub_text(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(MASK, text)
    return _CREDENTIALS.sub(lambda match: f"{match.group(1)} {MASK}", text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


class SecretsFilter(logging.Filter):
    """Masks secrets in the formatted message (and traceback) of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub_text(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        return True


def sentry_before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    return _scrub(event)
