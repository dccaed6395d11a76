from apps.traces.services import batch_mark_routed
from workers.base import untrace_task
from workers.queues import Queue


@untrace_task(queue=Queue.ROUTE)
def route_batch(batch_id: str) -> bool:
    """Route one stored ingest batch. Until routing rules and destinations exist
    for the project, routing a batch means recording it as handled."""
    return batch_mark_routed(batch_id=batch_id)
