"""The delivery pipeline in-process: route, claim, send to a local webhook sink, record."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.delivery.models import Delivery
from apps.delivery.services import backoff_seconds, deliver_due
from apps.destinations.models import Destination
from tests.integration.delivery.conftest import spans
from workers.tasks.routing import route_batch

pytestmark = pytest.mark.django_db


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


def test_routed_spans_reach_the_sink_signed_and_the_ledger_records_it(to_hook, sink, ingest):
    delivery = route(ingest(spans(3)))
    assert (delivery.status, delivery.span_count, delivery.role) == ("pending", 3, "primary")
    assert deliver_due(to_hook.pk) == (1, [])
    assert sink.delivered == {"s0", "s1", "s2"}
    request = sink.requests[0]
    assert request["headers"]["webhook-id"].startswith("msg_") and request.get("status") == 200
    payload_span = sink.payloads[0]["spans"][0]
    assert payload_span["metadata"]["untrace"] == {
        "sample_rate": 1.0,
        "sampled_by": "no_sampling",
        "rule": "all",
    }
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)
    assert delivery.finished_at is not None


def test_small_batches_to_one_destination_go_in_one_request(to_hook, sink, ingest):
    for i in range(5):
        route(ingest(spans(2, prefix=f"b{i}-")))
    handled, _ = deliver_due(to_hook.pk)
    assert handled == 5 and len(sink.requests) == 1 and len(sink.delivered) == 10


def test_a_server_error_is_retried_with_backoff_then_delivered(to_hook, sink, ingest):
    sink.schedule = ["error"]
    delivery = route(ingest(spans(1)))
    deliver_due(to_hook.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, 500)
    assert "500" in delivery.last_error and delivery.next_attempt_at > delivery.first_attempt_at
    due_now(delivery)
    deliver_due(to_hook.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert sink.delivered == {"s0"}


def test_retry_after_is_honoured(to_hook, sink, ingest):
    sink.schedule = ["throttle"]
    sink.retry_after = 120
    delivery = route(ingest(spans(1)))
    deliver_due(to_hook.pk)
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.last_status == 429
    assert delivery.next_attempt_at >= timezone.now() + timedelta(seconds=110)


def test_a_timeout_is_retried(to_hook, sink, ingest):
    sink.schedule = ["timeout"]
    sink.delay = 1.5
    delivery = route(ingest(spans(1)))
    deliver_due(to_hook.pk)
    delivery.refresh_from_db()
    assert delivery.status == "pending" and "timed out" in delivery.last_error


def test_a_permanent_refusal_goes_to_dead_letters_with_the_platforms_answer(to_hook, sink, ingest):
    sink.mode = "bad"
    delivery = route(ingest(spans(2)))
    deliver_due(to_hook.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status) == ("dead", 400)
    assert "invalid payload: spans[0].name" in delivery.last_error


def test_410_dead_letters_and_disables_the_destination(to_hook, sink, ingest):
    sink.mode = "gone"
    delivery = route(ingest(spans(1)))
    deliver_due(to_hook.pk)
    delivery.refresh_from_db()
    assert delivery.status == "dead"
    destination = Destination.objects.get(pk=to_hook.pk)
    assert destination.enabled is False and "410" in destination.disabled_reason


def test_expired_deliveries_dead_letter_on_their_last_failure(to_hook, sink, ingest):
    sink.mode = "error"
    delivery = route(ingest(spans(1)))
    Delivery.objects.filter(pk=delivery.pk).update(expires_at=timezone.now())
    deliver_due(to_hook.pk)
    delivery.refresh_from_db()
    assert delivery.status == "dead" and delivery.last_status == 500


def test_the_circuit_opens_after_consecutive_failures_and_nothing_is_sent_or_dropped(to_hook, sink, ingest):
    sink.mode = "error"
    for i in range(4):
        route(ingest(spans(1, prefix=f"c{i}-")))
        Delivery.objects.update(next_attempt_at=timezone.now())
        deliver_due(to_hook.pk)
    sent = len(sink.requests)
    assert sent == 3  # the third failure opened it: the fourth batch is not sent
    pending = Delivery.objects.filter(status="pending")
    assert pending.count() == 4
    Delivery.objects.update(next_attempt_at=timezone.now())
    deliver_due(to_hook.pk)
    assert len(sink.requests) == sent and Delivery.objects.filter(status="pending").count() == 4


def test_an_open_circuit_sends_the_traffic_to_the_fallback(with_fallback, sink, backup_sink, ingest):
    hook, backup = with_fallback
    sink.mode = "error"
    for i in range(3):
        route(ingest(spans(1, prefix=f"f{i}-")))
        Delivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())
        deliver_due(hook.pk)
    route(ingest(spans(1, prefix="late-")))
    _, woken = deliver_due(hook.pk)
    assert woken == [str(backup.pk)]
    rerouted = Delivery.objects.filter(status="rerouted")
    assert rerouted.count() >= 1
    fallbacks = Delivery.objects.filter(fallback_of__in=rerouted)
    assert {f.destination_id for f in fallbacks} == {backup.pk} and {f.role for f in fallbacks} == {
        "fallback"
    }
    deliver_due(backup.pk)
    assert "late-0" in backup_sink.delivered


def test_a_dead_letter_goes_to_the_fallback(with_fallback, sink, backup_sink, ingest):
    hook, backup = with_fallback
    sink.mode = "bad"
    delivery = route(ingest(spans(2)))
    deliver_due(hook.pk)
    delivery.refresh_from_db()
    assert delivery.status == "rerouted"
    deliver_due(backup.pk)
    assert backup_sink.delivered == {"s0", "s1"}


def test_backoff_has_full_jitter_and_a_cap(settings):
    settings.UNTRACE_DELIVERY_BASE_BACKOFF_SECONDS = 1.0
    settings.UNTRACE_DELIVERY_MAX_BACKOFF_SECONDS = 300
    samples = [backoff_seconds(3) for _ in range(2000)]
    assert min(samples) >= 0 and max(samples) <= 4 and max(samples) > 3
    assert max(backoff_seconds(40) for _ in range(200)) <= 300
    assert backoff_seconds(1, retry_after=90) >= 90


def test_two_workers_never_claim_the_same_rows(to_hook, ingest):
    from apps.delivery.services import _claim

    route(ingest(spans(1, prefix="x")))
    route(ingest(spans(1, prefix="y")))
    first = _claim(to_hook, span_limit=1)
    second = _claim(to_hook, span_limit=1)
    third = _claim(to_hook, span_limit=1)
    assert len(first) == len(second) == 1 and first[0].pk != second[0].pk and third == []


def test_sampled_out_and_unmatched_spans_create_no_deliveries(api, hook, ingest):
    document = {
        "rules": [
            {
                "name": "claude only",
                "conditions": {"all": [{"field": "provider", "operator": "eq", "value": "anthropic"}]},
                "actions": {"destinations": [str(hook.pk)]},
            }
        ]
    }
    assert api.put("/v1/routing/config", document, format="json").status_code == 200
    batch = ingest(spans(2))
    assert route_batch(str(batch.pk)) is True
    assert not Delivery.objects.exists()


def test_large_deliveries_are_sent_by_the_route_task_at_once(settings, to_hook, sink, ingest):
    settings.UNTRACE_DELIVERY_INLINE_MIN_SPANS = 3
    big = route(ingest(spans(3, prefix="big")))
    small = route(ingest(spans(2, prefix="small")))
    big.refresh_from_db()
    small.refresh_from_db()
    assert (big.status, big.attempts) == ("delivered", 1) and small.status == "pending"
    assert sink.delivered == {"big0", "big1", "big2"}
    assert sink.payloads[0]["spans"][0]["metadata"]["untrace"]["rule"] == "all"


def test_an_inline_send_that_fails_is_retried_by_the_deliver_task(settings, to_hook, sink, ingest):
    settings.UNTRACE_DELIVERY_INLINE_MIN_SPANS = 1
    sink.schedule = ["error"]
    delivery = route(ingest(spans(2)))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, 500)
    due_now(delivery)
    deliver_due(to_hook.pk)
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and sink.delivered == {"s0", "s1"}


def test_dead_letters_of_an_outage_are_replayed_when_the_circuit_closes(settings, to_hook, sink, ingest):
    from apps.delivery.breaker import breaker_for, reset_breakers

    settings.UNTRACE_CIRCUIT_RESET_SECONDS = 0.2
    reset_breakers()
    sink.mode = "error"
    outage = route(ingest(spans(1, prefix="outage")))
    Delivery.objects.filter(pk=outage.pk).update(expires_at=timezone.now())
    deliver_due(to_hook.pk)  # the outage outlasted the retry window: dead
    sink.mode = "bad"
    refused = route(ingest(spans(1, prefix="refused")))
    deliver_due(to_hook.pk)  # refused for good: dead, and stays so
    assert set(Delivery.objects.values_list("status", flat=True)) == {"dead"}
    breaker_for(str(to_hook.pk)).open()
    time.sleep(0.3)
    sink.mode = "ok"
    route(ingest(spans(1, prefix="after")))
    Delivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())
    deliver_due(to_hook.pk)  # the trial succeeds: closed -> replay
    deliver_due(to_hook.pk)
    outage.refresh_from_db()
    refused.refresh_from_db()
    assert outage.status == "delivered" and outage.replays == 1
    assert refused.status == "dead"
    assert {"outage0", "after0"} <= sink.delivered


def test_spans_deleted_before_delivery_are_counted_not_sent(to_hook, sink, ingest):
    from apps.core.metrics import DELIVERIES
    from apps.traces.models import Span

    delivery = route(ingest(spans(2)))
    Span.objects.filter(span_id="s0").delete()
    counter = DELIVERIES.labels(str(to_hook.pk), "span_deleted")
    before = counter._value.get()
    deliver_due(to_hook.pk)
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and sink.delivered == {"s1"}
    assert counter._value.get() == before + 1
