from apps.core.metrics import ROUTING_DECISIONS
from apps.delivery.services import route_and_record, send_fresh
from apps.delivery.wake import wake
from apps.routing.batches import BatchRouting, route_batch_plans
from workers.base import untrace_task
from workers.queues import Queue


def _count(routing: BatchRouting) -> None:
    kept = sum(len(plan.targets) for plan in routing.plans)
    sampled_out = sum(len(plan.dropped) for plan in routing.plans)
    disabled = sum(len(plan.disabled) for plan in routing.plans)
    unrouted = sum(1 for plan in routing.plans if not (plan.targets or plan.dropped or plan.disabled))
    backfilled = sum(len(plan.targets) for plan in routing.backfill)
    for outcome, count in (
        ("kept", kept),
        ("sampled_out", sampled_out),
        ("disabled", disabled),
        ("unrouted", unrouted),
        ("backfilled", backfilled),
    ):
        if count:
            ROUTING_DECISIONS.labels(outcome).inc(count)


@untrace_task(queue=Queue.ROUTE)
def route_batch(batch_id: str) -> bool:
    """Route one stored ingest batch with the project's live configuration: write
    its deliveries and mark it routed in one transaction, send the larger ones
    at once and wake the deliver task for the rest. Returns False when the
    batch is unknown or was routed already."""
    routing = route_batch_plans(batch_id)
    if routing is None:
        return False
    fresh = route_and_record(routing)
    if fresh is None:
        return False
    _count(routing)
    wake(send_fresh(routing, fresh))
    return True
