"""The delivery pipeline: outbox rows from routing, claiming, sending, retries,
dead letters, fallbacks and replay.

A row is claimed by setting `lease_until` inside a short transaction that
locks it with `SELECT ... FOR UPDATE SKIP LOCKED`, so two workers never send the
same row at once and no transaction stays open during the HTTP call. A worker
killed mid-send leaves a lease that expires; the beat task finds the row again
(as it finds rows whose Celery message Redis lost). Delivery is at-least-once:
a re-sent span carries the same id.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pybreaker
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.core.metrics import DELIVERIES, DELIVERY_LAG, DELIVERY_RETRIES
from apps.delivery.breaker import DeliveryFailed, breaker_for, circuit_state
from apps.delivery.models import Delivery, DeliveryStatus
from apps.delivery.sender import send_all
from apps.destinations.connectors import connector_for
from apps.destinations.connectors.base import RETRYABLE_4XX, Outcome
from apps.destinations.models import Destination
from apps.routing.batches import BatchRouting
from apps.routing.context import TransformContext
from apps.routing.router import SpanPlan, Target, render
from apps.routing.sampling import Decision
from apps.routing.services import compiled_version, project_hash_key, transform_context
from apps.traces.models import IngestBatch
from apps.traces.selectors import documents_by_pk

logger = logging.getLogger(__name__)

LEASE_MARGIN = timedelta(seconds=30)
MAX_ROWS_PER_SEND = 200


# --- From routing to the outbox ------------------------------------------------------------------


def _item(plan: SpanPlan, target: Target) -> list[Any]:
    rule_id = target.rule.id if target.rule is not None else None
    return [plan.pk, rule_id, target.role, round(target.decision.rate, 6), target.decision.policy]


@dataclass
class Fresh:
    """A delivery routing just made, with the (plan, target) pairs it carries, so
    the route task can render and send it without reading the spans again."""

    row: Delivery
    pairs: list[tuple[SpanPlan, Target]]


def deliveries_build(routing: BatchRouting) -> list[Fresh]:
    """One outbox row per (destination, fallback) for the batch's kept spans."""
    groups: dict[tuple[str, str | None], list[tuple[SpanPlan, Target]]] = defaultdict(list)
    for plan in routing.all_plans():
        if plan.pk is None:
            continue
        for target in plan.targets:
            groups[(target.destination_id, target.fallback_id)].append((plan, target))
    now = timezone.now()
    linger = timedelta(seconds=settings.UNTRACE_DELIVERY_LINGER_SECONDS)
    max_age = timedelta(seconds=settings.UNTRACE_DELIVERY_MAX_AGE_SECONDS)
    fresh = []
    for (destination_id, fallback_id), pairs in groups.items():
        items = [_item(plan, target) for plan, target in pairs]
        row = Delivery(
            project_id=routing.project_id,
            destination_id=destination_id,
            fallback_destination_id=fallback_id,
            batch_id=routing.batch_id,
            version_id=routing.live.version_id,
            role=items[0][2] if len({item[2] for item in items}) == 1 else "mixed",
            items=items,
            span_count=len(items),
            next_attempt_at=now + linger,
            expires_at=now + max_age,
        )
        fresh.append(Fresh(row, pairs))
    return fresh


def route_and_record(routing: BatchRouting) -> list[Fresh] | None:
    """Write the batch's deliveries and mark it routed, in one transaction.
    Returns them, or None when another worker routed the batch first."""
    fresh = deliveries_build(routing)
    with transaction.atomic():
        updated = IngestBatch.objects.filter(pk=routing.batch_id, routed_at__isnull=True).update(
            routed_at=timezone.now()
        )
        if updated != 1:
            return None
        Delivery.objects.bulk_create([f.row for f in fresh])
    return fresh


def send_fresh(routing: BatchRouting, fresh: list[Fresh]) -> list[str]:
    """Send the batch's deliveries of at least UNTRACE_DELIVERY_INLINE_MIN_SPANS
    spans at once, rendered from the spans already in memory, when the
    destination's circuit is closed. Smaller ones wait (linger) to be sent with
    others by the deliver task. Returns the destinations to wake."""
    wake: set[str] = set()
    destinations = {
        str(d.pk): d
        for d in Destination.objects.filter(pk__in={f.row.destination_id for f in fresh}, enabled=True)
    }
    for item in fresh:
        row = item.row
        destination = destinations.get(str(row.destination_id))
        if (
            destination is None
            or row.span_count < settings.UNTRACE_DELIVERY_INLINE_MIN_SPANS
            or circuit_state(destination.pk) != "closed"
        ):
            wake.add(str(row.destination_id))
            continue
        claimed = _claim_rows([row.pk])
        if not claimed:
            continue
        spans = [render(routing.live.config, plan, target, routing.context)[0] for plan, target in item.pairs]
        result = _send(destination, claimed, spans=spans)
        wake.update(_finish(destination, claimed, result))
        if not result.outcome.ok:
            wake.add(str(row.destination_id))
    return sorted(wake)


# --- Claiming and sending ------------------------------------------------------------------------


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, capped; a Retry-After is a floor."""
    cap = settings.UNTRACE_DELIVERY_MAX_BACKOFF_SECONDS
    ceiling = min(cap, settings.UNTRACE_DELIVERY_BASE_BACKOFF_SECONDS * 2 ** max(0, attempts - 1))
    delay = random.uniform(0, ceiling)  # noqa: S311 (jitter, not a secret)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.UNTRACE_DELIVERY_MAX_AGE_SECONDS))
    return delay


def _lease(rows: list[Delivery], now: datetime) -> None:
    lease = now + timedelta(seconds=settings.UNTRACE_DELIVERY_TIMEOUT) + LEASE_MARGIN
    for row in rows:
        row.lease_until = lease
        row.attempts += 1
        row.first_attempt_at = row.first_attempt_at or now
        row.save(update_fields=["lease_until", "attempts", "first_attempt_at", "updated_at"])


def _claimable(now: datetime):
    return Delivery.objects.filter(status=DeliveryStatus.PENDING).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )


def _claim(destination: Destination, span_limit: int) -> list[Delivery]:
    """Due rows of a destination, oldest first, up to `span_limit` spans."""
    now = timezone.now()
    with transaction.atomic():
        candidates = list(
            _claimable(now)
            .filter(destination=destination, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)[:MAX_ROWS_PER_SEND]
        )
        claimed, spans = [], 0
        for row in candidates:
            if claimed and spans + row.span_count > span_limit:
                break
            claimed.append(row)
            spans += row.span_count
        _lease(claimed, now)
    return claimed


def _claim_rows(pks: list[uuid.UUID]) -> list[Delivery]:
    """These rows, if no other worker holds them."""
    now = timezone.now()
    with transaction.atomic():
        claimed = list(_claimable(now).filter(pk__in=pks).select_for_update(skip_locked=True))
        _lease(claimed, now)
    return claimed


def _payloads(rows: list[Delivery]) -> list[dict[str, Any]]:
    """Render each row's spans as routing decided, with the version that decided it."""
    if not rows:
        return []
    project_id = rows[0].project_id
    documents = documents_by_pk(project_id=project_id, pks=[item[0] for row in rows for item in row.items])
    hash_key = project_hash_key(project_id)
    batches = {b.pk: b.api_key_id for b in IngestBatch.objects.filter(pk__in={r.batch_id for r in rows})}
    contexts: dict[uuid.UUID | None, TransformContext] = {}
    payloads = []
    for row in rows:
        config = compiled_version(row.version_id)
        key_id = batches.get(row.batch_id)
        ctx = contexts.get(key_id)
        if ctx is None:
            ctx = contexts[key_id] = transform_context(project_id, hash_key, key_id)
        for pk, rule_id, role, rate, policy in row.items:
            span = documents.get(pk)
            if span is None:  # deleted since (retention, or with its project): counted, not sent
                DELIVERIES.labels(str(row.destination_id), "span_deleted").inc()
                continue
            rule = config.rules_by_id.get(rule_id) if rule_id else None
            target = Target(str(row.destination_id), role, rule, Decision(True, rate, policy))
            payload, _ = render(config, SpanPlan(span, pk), target, ctx)
            payloads.append(payload)
    return payloads


@dataclass
class SendResult:
    outcome: Outcome
    attempted: bool  # False when the open circuit stopped it before sending


def _send(
    destination: Destination, rows: list[Delivery], spans: list[dict[str, Any]] | None = None
) -> SendResult:
    connector = connector_for(destination.type)
    if connector is None:
        outcome = Outcome(ok=False, retryable=True, message=f"no connector for {destination.type} yet")
        return SendResult(outcome, attempted=False)
    if spans is None:
        spans = _payloads(rows)
    message_id = "msg_" + uuid.uuid5(uuid.NAMESPACE_URL, ",".join(sorted(str(r.pk) for r in rows))).hex
    requests = connector.build_requests(destination, spans, message_id=message_id) if spans else []
    attempted = False

    def attempt() -> Outcome:
        nonlocal attempted
        attempted = True
        outcome = send_all(connector, requests)
        if not outcome.ok and outcome.retryable:
            raise DeliveryFailed(outcome)
        return outcome

    try:
        return SendResult(breaker_for(str(destination.pk)).call(attempt), attempted=True)
    except DeliveryFailed as exc:
        return SendResult(exc.args[0], attempted=True)
    except pybreaker.CircuitBreakerError as exc:
        if attempted:  # this failure opened the circuit
            return SendResult(Outcome(ok=False, retryable=True, message=f"circuit opened: {exc}"), True)
        return SendResult(Outcome(ok=False, retryable=True, message="circuit open"), attempted=False)


def _expired(row: Delivery, now: datetime) -> bool:
    return now >= row.expires_at


def _reroute(row: Delivery, now: datetime) -> Delivery | None:
    """Hand the row to its fallback destination, as a new pending row."""
    if row.fallback_destination_id is None:
        return None
    fallback = Delivery.objects.create(
        project_id=row.project_id,
        destination_id=row.fallback_destination_id,
        batch_id=row.batch_id,
        version_id=row.version_id,
        role="fallback",
        fallback_of=row,
        items=[[pk, rule_id, "fallback", rate, policy] for pk, rule_id, _, rate, policy in row.items],
        span_count=row.span_count,
        next_attempt_at=now,
        expires_at=now + timedelta(seconds=settings.UNTRACE_DELIVERY_MAX_AGE_SECONDS),
    )
    row.status = DeliveryStatus.REROUTED
    row.finished_at = now
    return fallback


def _finish(destination: Destination, rows: list[Delivery], result: SendResult) -> list[str]:
    """Record the outcome on every row; returns destinations that got new work (fallbacks)."""
    outcome = result.outcome
    now = timezone.now()
    woken: list[str] = []
    label = str(destination.pk)
    for row in rows:
        row.lease_until = None
        row.last_status = outcome.status
        if outcome.ok:
            row.status = DeliveryStatus.DELIVERED
            row.finished_at = now
            row.last_error = ""
            row.item_errors = outcome.item_errors or None
            DELIVERIES.labels(label, "delivered").inc(row.span_count)
            DELIVERY_LAG.labels(label).observe((now - row.created_at).total_seconds())
            continue
        row.last_error = (f"{outcome.message}: {outcome.body}" if outcome.body else outcome.message)[:4000]
        if not result.attempted:
            row.attempts = max(0, row.attempts - 1)  # the open circuit stopped it: not an attempt
        permanent = not outcome.retryable
        if permanent or _expired(row, now):
            if _reroute(row, now) is not None:
                woken.append(str(row.fallback_destination_id))
                DELIVERIES.labels(label, "rerouted").inc(row.span_count)
            else:
                row.status = DeliveryStatus.DEAD
                row.finished_at = now
                DELIVERIES.labels(label, "dead").inc(row.span_count)
            continue
        if not result.attempted and row.fallback_destination_id is not None:
            _reroute(row, now)  # the circuit is open: the fallback takes the traffic
            woken.append(str(row.fallback_destination_id))
            DELIVERIES.labels(label, "rerouted").inc(row.span_count)
            continue
        delay = (
            settings.UNTRACE_CIRCUIT_RESET_SECONDS
            if not result.attempted
            else backoff_seconds(row.attempts, outcome.retry_after)
        )
        row.next_attempt_at = now + timedelta(seconds=delay)
        DELIVERY_RETRIES.labels(label).inc()
    with transaction.atomic():
        for row in rows:
            row.save()
        if outcome.gone:
            Destination.objects.filter(pk=destination.pk).update(
                enabled=False,
                disabled_reason=f"The platform answered 410 Gone at {now.isoformat()}; "
                "re-enable it once fixed.",
            )
    return woken


def deliver_due(destination_id: uuid.UUID | str, *, budget_seconds: float = 20.0) -> tuple[int, list[str]]:
    """Send what is due for one destination until nothing is, or the time budget
    is spent. Returns (rows finished or rescheduled, destinations to wake)."""
    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is None:
        return 0, []
    connector = connector_for(destination.type)
    span_limit = connector.max_batch_spans if connector else 500
    started = time.monotonic()
    handled, woken = 0, []
    while time.monotonic() - started < budget_seconds:
        rows = _claim(destination, span_limit)
        if not rows:
            break
        result = _send(destination, rows)
        woken.extend(_finish(destination, rows, result))
        handled += len(rows)
        if not result.outcome.ok:
            break  # failing: the rest waits for its own next attempt
    return handled, sorted(set(woken))


def destinations_due(limit: int = 1000) -> list[str]:
    """Destinations with rows due now (new, retried, or whose lease ran out)."""
    now = timezone.now()
    return [
        str(pk)
        for pk in Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .values_list("destination_id", flat=True)
        .distinct()[:limit]
    ]


# --- Replay ----------------------------------------------------------------------------------------


def deliveries_replay(queryset) -> int:
    """Send the dead-lettered deliveries of `queryset` again, from their stored spans,
    and wake their destinations; returns how many. Delivered rows are not re-sent."""
    now = timezone.now()
    rows = list(queryset.filter(status=DeliveryStatus.DEAD).values_list("pk", "destination_id"))
    Delivery.objects.filter(pk__in=[pk for pk, _ in rows]).update(
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        lease_until=None,
        finished_at=None,
        expires_at=now + timedelta(seconds=settings.UNTRACE_DELIVERY_MAX_AGE_SECONDS),
        replays=F("replays") + 1,
    )
    if rows:
        from apps.delivery.wake import wake  # wake enqueues the deliver task, which calls this module

        wake(sorted({str(destination_id) for _, destination_id in rows}), countdown=0)
    return len(rows)


def replay_after_recovery(destination_id: str) -> int:
    """Replay the destination's dead letters whose last failure was retryable
    (or a timeout) once its circuit closed again; permanent refusals stay."""
    retryable = Q(last_status__isnull=True) | Q(last_status__gte=500) | Q(last_status__in=RETRYABLE_4XX)
    since = timezone.now() - timedelta(seconds=settings.UNTRACE_DELIVERY_MAX_AGE_SECONDS)
    rows = Delivery.objects.filter(destination_id=destination_id, finished_at__gte=since).filter(retryable)
    return deliveries_replay(rows)


# --- Test connection -------------------------------------------------------------------------------


def _sample_span() -> dict[str, Any]:
    now = timezone.now()
    span_id = f"untrace-test-{uuid.uuid4()}"
    return {
        "id": span_id,
        "trace_id": span_id,
        "name": "untrace connection test",
        "kind": "llm",
        "start_time": (now - timedelta(milliseconds=420)).isoformat(),
        "end_time": now.isoformat(),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "request": {"messages": [{"role": "user", "content": "Say hello."}]},
        "response": {
            "content": "Hello!",
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
            "finish_reason": "stop",
        },
        "metadata": {"environment": "test", "tags": {"source": "untrace-test"}},
        "metrics": {"latency_ms": 420.0, "estimated_cost": 0.0000026},
    }


def _verdict(outcome: Outcome) -> str:
    if outcome.ok:
        return "accepted"
    if outcome.status in (401, 403):
        return "authentication failed: check the credentials"
    if outcome.status == 404:
        return "not found: check the URL and the project"
    if outcome.status is None:
        return f"unreachable: {outcome.message}"
    return outcome.message


def destination_test(destination: Destination) -> dict[str, Any]:
    """Send one sample span now (no retries, no breaker, no ledger) and report
    what the platform said."""
    connector = connector_for(destination.type)
    if connector is None:
        return {
            "ok": False,
            "status": None,
            "message": f"no connector for {destination.type} yet",
            "body": "",
        }
    span = _sample_span()
    started = time.monotonic()
    outcome = send_all(
        connector, connector.build_requests(destination, [span], message_id=f"msg_{span['id']}")
    )
    return {
        "ok": outcome.ok,
        "status": outcome.status,
        "message": _verdict(outcome),
        "body": outcome.body,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
        "span_id": span["id"],
    }
