"""A destination whose host now resolves to a refused address: dead letter, nothing sent."""

from __future__ import annotations

import pytest

from apps.delivery.models import Delivery
from apps.delivery.services import deliver_due
from tests.factories import DestinationFactory
from tests.integration.delivery.conftest import SECRET, spans
from tests.unit.test_outbound import HINT, fake_dns
from workers.tasks.routing import route_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def renamed_hook(api, project, sink):
    """A webhook saved with a host name that later resolves to loopback (DNS rebinding)."""
    port = sink.url.split(":")[2].split("/")[0]
    hook = DestinationFactory(
        project=project,
        name="renamed",
        config={"url": f"http://hook.example.test:{port}/hook", "secret": SECRET},
    )
    document = {"rules": [{"name": "all", "conditions": {}, "actions": {"destinations": [str(hook.pk)]}}]}
    assert api.put("/v1/routing/config", document, format="json").status_code == 200
    return hook


def test_a_destination_resolving_to_loopback_is_dead_lettered_with_the_reason_unsent(
    renamed_hook, sink, ingest, settings, monkeypatch
):
    batch = ingest(spans(2))
    assert route_batch(str(batch.pk)) is True
    fake_dns(monkeypatch, {"hook.example.test": ["127.0.0.1"]})
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = False
    deliver_due(renamed_hook.pk)
    delivery = Delivery.objects.get(batch_id=batch.pk)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("dead", 1, None)
    assert delivery.last_error == f"hook.example.test resolves to 127.0.0.1, a loopback address {HINT}"
    assert sink.requests == []


def test_the_same_destination_delivers_when_private_addresses_are_allowed(
    renamed_hook, sink, ingest, monkeypatch
):
    batch = ingest(spans(2))
    assert route_batch(str(batch.pk)) is True
    fake_dns(monkeypatch, {"hook.example.test": ["127.0.0.1"]})
    deliver_due(renamed_hook.pk)
    delivery = Delivery.objects.get(batch_id=batch.pk)
    assert delivery.status == "delivered" and sink.delivered == {"s0", "s1"}
