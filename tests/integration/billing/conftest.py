from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
import redis
from django.conf import settings

from apps.billing import usage
from apps.billing.models import Plan
from tests.fakes.stripe_api import fake_stripe

WEBHOOK_SECRET = "whsec_test_secret"
PRICE_GROWTH = "price_growth_test"
PRICE_SCALE = "price_scale_test"


def _clear_redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)  # the test database (15)
    keys = list(client.scan_iter("untrace:usage:*")) + [usage.EXCEEDED_KEY]
    client.delete(*keys)
    client.close()
    usage.forget_cache()


@pytest.fixture(autouse=True)
def _billing_state(settings):
    """Organizations start on the starter plan; counters and pauses start empty."""
    settings.UNTRACE_DEFAULT_PLAN = "starter"
    settings.STRIPE_SECRET_KEY = ""
    _clear_redis()
    yield
    _clear_redis()


@pytest.fixture(autouse=True)
def routed(monkeypatch) -> list:
    """Batch ids handed to the route task (the broker is never called)."""
    calls: list = []
    monkeypatch.setattr("apps.traces.store.enqueue_routing", lambda *, batch_id: calls.append(batch_id))
    return calls


@pytest.fixture
def key(api_key) -> str:
    return api_key.secret


@pytest.fixture
def organization(project):
    return project.organization


@pytest.fixture
def small_starter(db):
    """The starter plan with a limit of 10 traces, so tests reach it with real requests."""
    Plan.objects.filter(code="starter").update(monthly_traces=10)
    return Plan.objects.get(code="starter")


@pytest.fixture
def stripe_api(settings):
    """Billing enabled, talking to a local fake of the Stripe API."""
    with fake_stripe() as fake:
        settings.STRIPE_SECRET_KEY = "sk_test_fake"
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_PRICE_GROWTH = PRICE_GROWTH
        settings.STRIPE_PRICE_SCALE = PRICE_SCALE
        settings.STRIPE_API_BASE = fake.url
        yield fake


def stripe_signature(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """Stripe's scheme: t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload">."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def stripe_event(event_id: str, event_type: str, obj: dict[str, Any], created: int) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": created,
            "livemode": False,
            "type": event_type,
            "data": {"object": obj},
        }
    ).encode()


def send_event(client, payload: bytes, signature: str | None = "sign"):
    headers = {}
    if signature == "sign":
        signature = stripe_signature(payload)
    if signature is not None:
        headers["HTTP_STRIPE_SIGNATURE"] = signature
    return client.post("/billing/stripe/webhook", payload, content_type="application/json", **headers)
