"""A loopback server answering like the Stripe API for the calls billing makes
(customers, Checkout Sessions, Customer Portal sessions); the real `stripe`
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
    else:
        return _error(404, f"Unrecognized request URL (POST: {path})")
    return 200, json.dumps(body).encode(), {"content-type": "application/json", "request-id": f"req_{n}"}


@contextmanager
def fake_stripe() -> Iterator[FakeStripe]:
    holder: list[FakeStripe] = []
    with running_recorder(lambda record: _answer(holder, record)) as recorder:
        holder.append(FakeStripe(recorder))
        yield holder[0]
