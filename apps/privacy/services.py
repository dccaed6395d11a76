"""Privacy writes: erasing a user's or a session's spans, and deleting an organization
with everything it owns.

Both delete in statements of at most DELETE_BATCH rows picked by primary key (like
retention), so no statement holds locks for long and ingest carries on. What does
not fit in the request goes on in a maintenance task (`workers/tasks/privacy.py`)
that works within a time budget and enqueues itself again until done.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from apps.accounts.models import Invitation, Membership, Organization, Project, Role
from apps.audit.models import AuditEvent
from apps.audit.services import actor_fields, audit_record
from apps.core.crypto import decrypt, encrypt
from apps.delivery.models import Delivery, DeliveryStatus
from apps.keys import cache as key_cache
from apps.keys.models import ApiKey
from apps.privacy import suppression
from apps.privacy.hashing import subject_hash
from apps.privacy.models import Erasure, ErasureStatus, Suppression
from apps.privacy.selectors import subject_spans
from apps.traces.models import IngestBatch, Span

logger = logging.getLogger(__name__)

DELETE_BATCH = 5000
# Deliveries that may still send: waiting (or retrying), and dead letters that a replay would revive.
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.DEAD)
# An item is `[span row id, rule, role, rate, policy]`; the (project, status) index narrows the scan.
_OPEN_DELIVERIES_SQL = (
    "SELECT id FROM delivery_delivery WHERE project_id = %s AND status = ANY(%s) "
    "AND EXISTS (SELECT 1 FROM jsonb_array_elements(items) AS item WHERE (item->>0)::bigint = ANY(%s))"
)
TASK_BUDGET_SECONDS = 50.0
REQUEST_BUDGET_SECONDS = 10.0


# --- erasure ---------------------------------------------------------------------------------------


def _open_deliveries_with(project_id: uuid.UUID, pks: list[int]) -> list[uuid.UUID]:
    """Ids of the project's open deliveries that carry any of these span row ids."""
    open_statuses = [s.value for s in OPEN_STATUSES]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_OPEN_DELIVERIES_SQL, [project_id, open_statuses, pks])
            return [row[0] for row in cursor.fetchall()]
    wanted = set(pks)
    return [
        pk
        for pk, items in Delivery.objects.for_project(project_id)
        .filter(status__in=open_statuses)
        .values_list("pk", "items")
        if any(item[0] in wanted for item in items)
    ]


def _deliveries_strip(project_id: uuid.UUID, pks: list[int], erasure_id: uuid.UUID) -> int:
    """Remove these spans from every open delivery (inside the caller's transaction);
    a delivery left with no span is cancelled. Returns the deliveries changed."""
    ids = _open_deliveries_with(project_id, pks)
    if not ids:
        return 0
    erased = set(pks)
    now = timezone.now()
    changed = 0
    for row in Delivery.objects.filter(pk__in=ids, status__in=OPEN_STATUSES).select_for_update():
        items = [item for item in row.items if item[0] not in erased]
        if len(items) == len(row.items):
            continue
        row.items = items
        row.span_count = len(items)
        fields = ["items", "span_count", "updated_at"]
        if not items:
            row.status = DeliveryStatus.CANCELLED
            row.finished_at = now
            row.lease_until = None
            row.last_error = f"Cancelled: every span it carried was erased (privacy erasure {erasure_id})."
            fields += ["status", "finished_at", "lease_until", "last_error"]
        row.save(update_fields=fields)
        changed += 1
    return changed


def _erase_batch(erasure: Erasure, value: str) -> bool:
    """Delete up to DELETE_BATCH spans of the subject and take them out of open
    deliveries, in one transaction. True when more may be left."""
    queryset = subject_spans(project_id=erasure.project_id, kind=erasure.subject_kind, value=value)
    pks = list(queryset.order_by().values_list("pk", flat=True)[:DELETE_BATCH])
    if not pks:
        return False
    with transaction.atomic():
        changed = _deliveries_strip(erasure.project_id, pks, erasure.pk)
        deleted, _ = Span.objects.filter(pk__in=pks).delete()
        Erasure.objects.filter(pk=erasure.pk).update(
            spans_deleted=F("spans_deleted") + deleted,
            deliveries_changed=F("deliveries_changed") + changed,
            updated_at=timezone.now(),
        )
    return len(pks) == DELETE_BATCH


def _erasure_finish(erasure: Erasure) -> None:
    Erasure.objects.filter(pk=erasure.pk).update(
        status=ErasureStatus.COMPLETED,
        subject_encrypted="",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


def _enqueue_erasure(erasure_id: uuid.UUID) -> None:
    from workers.tasks.privacy import continue_erasure  # the task module imports these services

    transaction.on_commit(lambda: continue_erasure.delay(str(erasure_id)))


def erasure_create(*, project_id: uuid.UUID, kind: str, value: str, actor: Any = None) -> Erasure:
    """Erase a user or a session of the project: suppress it (its later spans are dropped at
    ingest and before routing), delete its stored spans and take them out of open
    deliveries. The first DELETE_BATCH spans go now; a maintenance task deletes the rest."""
    digest = subject_hash(kind, value)
    fields = actor_fields(actor)
    Suppression.objects.get_or_create(
        project_id=project_id,
        kind=kind,
        value_hash=digest,
        defaults={"created_by_id": fields["actor_user_id"], "created_by_key_id": fields["actor_key_id"]},
    )
    suppression.forget(project_id)
    erasure = Erasure.objects.create(
        project_id=project_id,
        subject_kind=kind,
        subject_hash=digest,
        subject_encrypted=encrypt(value),
        created_by_id=fields["actor_user_id"],
        created_by_key_id=fields["actor_key_id"],
    )
    audit_record(
        action="privacy.erasure_requested",
        organization_id=None,
        project_id=project_id,
        target_type="erasure",
        target_id=erasure.pk,
        details={"subject_kind": kind},
        **fields,
    )
    try:
        more = _erase_batch(erasure, value)
    except Exception:
        _enqueue_erasure(erasure.pk)  # the suppression holds; the task deletes what is left
        raise
    if more:
        _enqueue_erasure(erasure.pk)
    else:
        _erasure_finish(erasure)
    erasure.refresh_from_db()
    return erasure


def erasure_continue(erasure_id: uuid.UUID | str, *, budget_seconds: float = TASK_BUDGET_SECONDS) -> bool:
    """Delete what is left of a running erasure within the budget; True when it is done
    (enqueues itself again otherwise)."""
    erasure = Erasure.objects.filter(pk=erasure_id, status=ErasureStatus.RUNNING).first()
    if erasure is None:
        return True
    value = decrypt(erasure.subject_encrypted)
    deadline = time.monotonic() + budget_seconds
    while _erase_batch(erasure, value):
        if time.monotonic() >= deadline:
            _enqueue_erasure(erasure.pk)
            return False
    _erasure_finish(erasure)
    return True


def suppressed_spans_drop(
    project_id: uuid.UUID, stored: list[tuple[int, dict[str, Any]]]
) -> list[tuple[int, dict[str, Any]]]:
    """The stored spans of a batch about to be routed, without those of erased subjects,
    which are deleted (they came in before this process saw the suppression)."""
    keep, erased = suppression.split_suppressed(project_id, stored)
    if erased:
        Span.objects.filter(project_id=project_id, pk__in=erased).delete()
        logger.info("dropped %d spans of erased subjects before routing", len(erased))
    return keep


def export_recorded(*, project_id: uuid.UUID, kind: str, spans: int, actor: Any = None) -> None:
    audit_record(
        action="privacy.export",
        organization_id=None,
        project_id=project_id,
        target_type=kind,
        details={"subject_kind": kind, "spans": spans},
        **actor_fields(actor),
    )


# --- organization deletion -------------------------------------------------------------------------


@dataclass(frozen=True)
class OrganizationDeletion:
    organization_id: uuid.UUID
    done: bool  # False: a maintenance task deletes the rest
    subscription_canceled: bool


def _delete_in_batches(queryset: QuerySet, deadline: float) -> bool:
    """Delete the rows of `queryset` DELETE_BATCH at a time; True when none is left."""
    while time.monotonic() < deadline:
        pks = list(queryset.order_by().values_list("pk", flat=True)[:DELETE_BATCH])
        if not pks:
            return True
        queryset.model._base_manager.filter(pk__in=pks).delete()
        if len(pks) < DELETE_BATCH:
            return True
    return False


def organization_purge(organization_id: uuid.UUID | str, *, budget_seconds: float) -> bool:
    """Delete an organization and every row it owns, the large tables first in batches;
    True when nothing is left, False when the budget ran out first."""
    deadline = time.monotonic() + budget_seconds
    for project_id in Project.objects.filter(organization_id=organization_id).values_list("pk", flat=True):
        for queryset in (
            Span.objects.filter(project_id=project_id),
            Delivery.objects.filter(project_id=project_id),
            IngestBatch.objects.filter(project_id=project_id),
            AuditEvent.objects.filter(project_id=project_id),
        ):
            if not _delete_in_batches(queryset, deadline):
                return False
        # What is left of the project is small (keys, destinations, routing, settings, privacy).
        Project.objects.filter(pk=project_id).delete()
        key_cache.clear()
        suppression.forget(project_id)
    if not _delete_in_batches(AuditEvent.objects.filter(organization_id=organization_id), deadline):
        return False
    # Memberships, invitations, billing row, usage counters, price overrides: cascaded.
    Organization.objects.filter(pk=organization_id).delete()
    return True


def _forget_usage(organization_id: uuid.UUID) -> None:
    """Take the organization out of the usage and paused-ingest hashes in Redis (best effort)."""
    import redis

    from apps.billing.usage import _redis, exceeded_clear, month_start, usage_key

    exceeded_clear(organization_id)
    try:
        _redis().hdel(usage_key(month_start()), str(organization_id))
    except redis.RedisError as exc:
        logger.warning("could not forget the usage of organization %s: %s", organization_id, exc)


def _enqueue_purge(organization_id: uuid.UUID) -> None:
    from workers.tasks.privacy import continue_organization_purge

    transaction.on_commit(lambda: continue_organization_purge.delay(str(organization_id)))


def organization_delete(
    *, organization: Organization, by_user: Any, budget_seconds: float = REQUEST_BUDGET_SECONDS
) -> OrganizationDeletion:
    """Delete an organization for good: cancel its Stripe subscription (nothing is deleted
    if Stripe refuses), end every access at once (memberships, invitations, API keys),
    then delete projects, spans, deliveries, destinations, keys, routing versions, usage,
    audit events and the rest in batches. Only an owner may."""
    from apps.billing.stripe_billing import subscription_cancel

    is_owner = Membership.objects.filter(organization=organization, user=by_user, role=Role.OWNER).exists()
    if not is_owner:
        raise PermissionDenied("Only an owner can delete the organization.")
    canceled = subscription_cancel(organization_id=organization.pk)
    with transaction.atomic():
        ApiKey.objects.filter(project__organization=organization).delete()
        Invitation.objects.filter(organization=organization).delete()
        Membership.objects.filter(organization=organization).delete()
    key_cache.clear()
    _forget_usage(organization.pk)
    # The record outlives the organization's own audit log, which is deleted with it.
    logger.warning(
        "organization %s (%s) deleted by user %s",
        organization.pk,
        organization.slug,
        getattr(by_user, "pk", None),
    )
    done = organization_purge(organization.pk, budget_seconds=budget_seconds)
    if not done:
        _enqueue_purge(organization.pk)
    return OrganizationDeletion(organization.pk, done, canceled)


def organization_purge_continue(
    organization_id: uuid.UUID | str, *, budget_seconds: float = TASK_BUDGET_SECONDS
) -> bool:
    """The maintenance task's part of a deletion; enqueues itself again until done."""
    if not Organization.objects.filter(pk=organization_id).exists():
        return True
    if Membership.objects.filter(organization_id=organization_id).exists():
        return True  # not an organization being deleted
    done = organization_purge(organization_id, budget_seconds=budget_seconds)
    if not done:
        _enqueue_purge(uuid.UUID(str(organization_id)))
    return done
