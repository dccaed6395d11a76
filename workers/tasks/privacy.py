from apps.privacy.services import erasure_continue, organization_purge_continue
from workers.base import untrace_task
from workers.queues import Queue


@untrace_task(queue=Queue.MAINTENANCE)
def continue_erasure(erasure_id: str) -> bool:
    """Delete what is left of a large erasure, a batch at a time within a time budget."""
    return erasure_continue(erasure_id)


@untrace_task(queue=Queue.MAINTENANCE)
def continue_organization_purge(organization_id: str) -> bool:
    """Delete what is left of a deleted organization, a batch at a time within a time budget."""
    return organization_purge_continue(organization_id)
