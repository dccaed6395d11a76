"""An erased subject's spans never leave: open deliveries lose them (or are cancelled),
replays and fallbacks send only what is left, and spans that arrive afterwards are
dropped at ingest or, past a stale cache, before routing. Sent to a local webhook sink."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.delivery.models import Delivery
from apps.delivery.services import deliver_due
from apps.privacy import suppression
from apps.privacy.hashing import subject_hash
from apps.privacy.models import Suppression
from apps.traces.models import Span
from workers.tasks.routing import route_batch

pytestmark = pytest.mark.django_db

ERASURES = "/v1/privacy/erasures"


@pytest.fixture
def to_hook(api, hook):
    document = {"rules": [{"name": "all", "conditions": {}, "actions": {"destinations": [str(hook.pk)]}}]}
    assert api.put("/v1/routing/config", document, format="json").status_code == 200
    return hook


@pytest.fixture
def with_fallback(api, hook, backup):
    actions = {"destinations": [str(hook.pk)], "fallback": str(backup.pk)}
    document = {"rules": [{"name": "all", "conditions": {}, "actions": actions}]}
    assert api.put("/v1/routing/config", document, format="json").status_code == 200
    return hook, backup


def route(batch) -> Delivery:
    assert route_batch(str(batch.pk)) is True
    return Delivery.objects.get(batch_id=batch.pk)


def due_now(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def erase(api, **subject) -> dict:
    response = api.post(ERASURES, subject, format="json")
    assert response.status_code == 202, response.content
    return response.json()


MIXED = [
    {"id": "alice-1", "trace_id": "t1", "user_id": "alice", "model": "gpt-4o-mini"},
    {"id": "bob-1", "trace_id": "t1", "user_id": "bob", "model": "gpt-4o-mini"},
    {"id": "alice-2", "trace_id": "t2", "user_id": "alice", "model": "gpt-4o-mini"},
]


def test_a_pending_delivery_no_longer_carries_the_erased_users_spans(api, to_hook, sink, ingest):
    delivery = route(ingest(MIXED))
    assert delivery.span_count == 3

    result = erase(api, user_id="alice")

    assert (result["spans_deleted"], result["deliveries_changed"]) == (2, 1)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.span_count) == ("pending", 1)
    due_now(delivery)
    deliver_due(to_hook.pk)
    assert sink.delivered == {"bob-1"}
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_a_delivery_left_empty_is_cancelled_and_sends_nothing(api, to_hook, sink, ingest):
    delivery = route(ingest([MIXED[0], MIXED[2]]))

    result = erase(api, user_id="alice")

    assert result["deliveries_changed"] == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.span_count, delivery.items) == ("cancelled", 0, [])
    assert delivery.last_error == (
        f"Cancelled: every span it carried was erased (privacy erasure {result['id']})."
    )
    assert delivery.finished_at is not None
    assert deliver_due(to_hook.pk) == (0, [])
    assert sink.requests == []
    listed = api.get("/v1/deliveries", {"status": "cancelled"}).json()["results"]
    assert [row["id"] for row in listed] == [str(delivery.pk)]


def test_replaying_an_old_dead_letter_after_erasure_does_not_send_the_user(api, to_hook, sink, ingest):
    sink.mode = "bad"
    mixed = route(ingest(MIXED))
    only_alice = route(ingest([{"id": "alice-3", "trace_id": "t3", "user_id": "alice"}]))
    deliver_due(to_hook.pk)
    for row in (mixed, only_alice):
        row.refresh_from_db()
        assert row.status == "dead"
    assert sink.delivered == set()  # refused, nothing accepted yet

    assert erase(api, user_id="alice")["deliveries_changed"] == 2

    sink.mode = "ok"
    response = api.post(f"/v1/deliveries/{mixed.pk}/replay")
    assert response.status_code == 200 and response.json()["span_ids"] == [mixed.items[1][0]]
    assert api.post("/v1/deliveries/replay", {}, format="json").json() == {"replayed": 0}
    refused = api.post(f"/v1/deliveries/{only_alice.pk}/replay")
    assert refused.status_code == 400
    deliver_due(to_hook.pk)
    assert sink.delivered == {"bob-1"}
    accepted = [span["id"] for payload in sink.payloads for span in payload["spans"]]
    assert not any(span_id.startswith("alice") for span_id in accepted)


def test_a_fallback_reroute_after_erasure_sends_only_what_is_left(
    api, with_fallback, sink, backup_sink, ingest
):
    hook, backup = with_fallback
    sink.mode = "bad"
    delivery = route(ingest(MIXED))
    erase(api, user_id="alice")

    deliver_due(hook.pk)
    delivery.refresh_from_db()
    assert delivery.status == "rerouted"
    fallback = Delivery.objects.get(fallback_of=delivery)
    assert fallback.span_count == 1
    deliver_due(backup.pk)
    assert backup_sink.delivered == {"bob-1"} and sink.delivered == set()


def test_a_span_stored_past_a_stale_cache_is_deleted_before_routing(project, to_hook, sink, ingest):
    ingest([{"id": "warm", "user_id": "bob"}])  # this process caches an empty list
    # Another process erases alice meanwhile: the row exists, this cache does not know yet.
    Suppression.objects.create(project=project, kind="user", value_hash=subject_hash("user", "alice"))

    batch = ingest([{"id": "late-alice", "user_id": "alice"}, {"id": "late-bob", "user_id": "bob"}])
    assert set(Span.objects.filter(batch_id=batch.pk).values_list("span_id", flat=True)) == {
        "late-alice",
        "late-bob",
    }

    delivery = route(batch)

    assert not Span.objects.filter(project=project, span_id="late-alice").exists()
    assert delivery.span_count == 1
    due_now(delivery)
    deliver_due(to_hook.pk)
    assert "late-alice" not in sink.delivered and "late-bob" in sink.delivered

    suppression.forget(project.pk)  # the cache expires: the next one is dropped at ingest
    again = ingest([{"id": "later-alice", "user_id": "alice"}, {"id": "later-bob", "user_id": "bob"}])
    assert set(Span.objects.filter(batch_id=again.pk).values_list("span_id", flat=True)) == {"later-bob"}


def test_an_erased_session_is_suppressed_like_a_user(api, project, to_hook, sink, ingest):
    erase(api, session_id="s-9")
    batch = ingest([{"id": "in-session", "session_id": "s-9"}, {"id": "other", "session_id": "s-8"}])
    assert set(Span.objects.filter(batch_id=batch.pk).values_list("span_id", flat=True)) == {"other"}


def test_the_store_reports_and_counts_what_it_suppressed(api, project):
    from apps.core.metrics import SPANS_SUPPRESSED
    from apps.traces.schema import SpanLimits, decode_span
    from apps.traces.store import spans_store
    from untrace.celery import app

    erase(api, user_id="zed")
    before = SPANS_SUPPRESSED.labels("proxy")._value.get()
    raw = [{"id": "z1", "user_id": "zed"}, {"id": "y1", "user_id": "yan"}]
    spans = [decode_span(span, limits=SpanLimits()) for span in raw]

    result = spans_store(project_id=project.pk, spans=spans, source="proxy")

    assert (result.ids, result.inserted, result.suppressed) == (["z1", "y1"], 1, 1)
    assert SPANS_SUPPRESSED.labels("proxy")._value.get() == before + 1
    assert "workers.tasks.privacy" in app.conf.imports  # the continuation tasks reach the workers
