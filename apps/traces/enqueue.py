"""Hand a stored batch to the route task, without ever failing or slowing the request.

The publish runs on one background thread after the transaction commits: the
client's 202 does not wait for Redis, and if the broker is down the batch
stays unrouted in PostgreSQL, where the reconciler finds it.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from kombu.exceptions import KombuError

from apps.core.metrics import ENQUEUE_FAILURES

logger = logging.getLogger(__name__)
_publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enqueue")


def publish_routing(batch_id: uuid.UUID) -> bool:
    """Publish now; True when the broker took the task."""
    from workers.tasks.routing import route_batch

    try:
        route_batch.apply_async(args=[str(batch_id)], retry=False)
    except (KombuError, OSError) as exc:
        ENQUEUE_FAILURES.labels("route").inc()
        logger.warning("could not enqueue routing of batch %s: %s", batch_id, exc)
        return False
    return True


def enqueue_routing(*, batch_id: uuid.UUID) -> Future[bool]:
    """Publish in the background; the future tells whether the broker took the task."""
    return _publisher.submit(publish_routing, batch_id)
