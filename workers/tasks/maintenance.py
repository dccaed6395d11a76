from apps.accounts.services import invitations_delete_expired
from apps.ingest.webhooks import messages_delete_old
from apps.traces.retention import apply_retention
from apps.traces.services import batches_requeue_unrouted
from workers.base import untrace_task
from workers.queues import Queue


@untrace_task(queue=Queue.MAINTENANCE)
def delete_expired_invitations() -> int:
    return invitations_delete_expired()


@untrace_task(queue=Queue.MAINTENANCE)
def delete_old_webhook_messages() -> int:
    return messages_delete_old()


@untrace_task(queue=Queue.MAINTENANCE)
def requeue_unrouted_batches() -> int:
    return batches_requeue_unrouted()


@untrace_task(queue=Queue.MAINTENANCE)
def delete_expired_data() -> dict[str, int]:
    """Spans, batches and finished deliveries past their project's retention."""
    return apply_retention()
