from apps.delivery.backpressure import publish_backlog
from apps.delivery.services import deliver_due, destinations_due
from apps.delivery.wake import wake, woken
from workers.base import untrace_task
from workers.queues import Queue


@untrace_task(queue=Queue.DELIVER)
def deliver(destination_id: str) -> int:
    """Send what is due for one destination (the message carries only its id)."""
    woken(destination_id)
    handled, fallbacks = deliver_due(destination_id)
    if fallbacks:
        wake(fallbacks, countdown=0)
    return handled


@untrace_task(queue=Queue.MAINTENANCE)
def wake_due_deliveries() -> int:
    """The delivery reconciler: wake every destination with rows due, whether new,
    retried, or left behind by a killed worker or a flushed broker. It also
    measures each project's backlog for ingest's backpressure."""
    publish_backlog()
    return wake(destinations_due(), countdown=0)
