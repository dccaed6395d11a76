"""A loopback server answering like the Stripe API for the calls billing makes
(customers, Checkout Sessions, Customer Portal sessions, subscription cancellation); the real `stripe`
library talks to it. Every request is recorded with its form-decoded body."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.platform_recorder import Recorder, running_recorder

_ids = itertools.count(1)


class FakeStripe:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.url = recorder.url
        self.fail_with: tuple[int, str] | None = None  # (status, message) for the next calls
        self.missing_subscriptions: set[str] = set()  # subscription ids answered 404
        # Billing meter events Stripe kept (one per identifier), and the answers kept per
        # Idempotency-Key: a request repeating a key gets the first answer back, as in Stripe.
        self.meter_events: dict[str, dict[str, str]] = {}
        self.idempotent_answers: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.lose_answers = 0  # meter events kept but answered 500 (the answer is lost)

    @property
    def calls(self) -> list[tuple[str, dict[str, str]]]:
        """(path, form fields) of every request, in order."""
        return [(r["path"], dict(parse_qsl(r["body"].decode()))) for r in self.recorder.requests]


def _error(status: int, message: str) -> tuple[int, bytes, dict[str, str]]:
    body = {"error": {"type": "invalid_request_error", "message": message}}
    return status, json.dumps(body).encode(), {"content-type": "application/json", "request-id": "req_fake"}


def _answer(fake: list[FakeStripe], record: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
    stripe = fake[0]
    if not record["headers"].get("authorization", "").startswith("Bearer sk_test_"):
        return _error(401, "Invalid API Key provided")
    if stripe.fail_with:
        return _error(*stripe.fail_with)
    n = next(_ids)
    form = dict(parse_qsl(record["body"].decode()))
    path = record["path"]
    if path == "/v1/billing/meter_events":
        return _meter_event(stripe, record, form)
    if path == "/v1/customers":
        body = {
            "id": f"cus_fake{n}",
            "object": "customer",
            "name": form.get("name"),
            "email": form.get("email"),
        }
    elif path == "/v1/checkout/sessions":
        body = {
            "id": f"cs_test_fake{n}",
            "object": "checkout.session",
            "mode": form.get("mode"),
            "customer": form.get("customer"),
            "url": f"https://checkout.stripe.com/c/pay/cs_test_fake{n}",
        }
    elif path == "/v1/billing_portal/sessions":
        body = {
            "id": f"bps_fake{n}",
            "object": "billing_portal.session",
            "customer": form.get("customer"),
            "url": f"https://billing.stripe.com/p/session/test_fake{n}",
        }
    elif record["method"] == "DELETE" and path.startswith("/v1/subscriptions/"):
        subscription_id = path.removeprefix("/v1/subscriptions/")
        if subscription_id in stripe.missing_subscriptions:
            return _error(404, f"No such subscription: '{subscription_id}'")
        body = {"id": subscription_id, "object": "subscription", "status": "canceled"}
    else:
        return _error(404, f"Unrecognized request URL ({record['method']}: {path})")
    return 200, json.dumps(body).encode(), {"content-type": "application/json", "request-id": f"req_{n}"}


def _meter_event(stripe: FakeStripe, record: dict[str, Any], form: dict[str, str]):
    key = record["headers"].get("idempotency-key")
    if key and key in stripe.idempotent_answers:
        return _lost(stripe) or stripe.idempotent_answers[key]
    identifier = form.get("identifier") or f"mev_{len(stripe.meter_events)}"
    if identifier in stripe.meter_events:
        return _error(400, f"An event already exists with identifier {identifier}.")
    event = {
        "object": "billing.meter_event",
        "event_name": form["event_name"],
        "identifier": identifier,
        "timestamp": int(form["timestamp"]),
        "payload": {
            "stripe_customer_id": form["payload[stripe_customer_id]"],
            "value": form["payload[value]"],
        },
        "livemode": False,
    }
    stripe.meter_events[identifier] = event
    answer = (200, json.dumps(event).encode(), {"content-type": "application/json", "request-id": "req_mev"})
    if key:
        stripe.idempotent_answers[key] = answer
    return _lost(stripe) or answer


def _lost(stripe: FakeStripe):
    if stripe.lose_answers:
        stripe.lose_answers -= 1
        return _error(500, "An unknown error occurred")
    return None


@contextmanager
def fake_stripe() -> Iterator[FakeStripe]:
    holder: list[FakeStripe] = []
    with running_recorder(lambda record: _answer(holder, record)) as recorder:
        holder.append(FakeStripe(recorder))
        yield holder[0]
