from apps.billing.metering import overage_report
from apps.billing.services import quotas_check, usage_persist, usage_reconcile
from workers.base import untrace_task
from workers.queues import Queue


@untrace_task(queue=Queue.MAINTENANCE)
def persist_usage() -> int:
    """Usage counted in Redis -> PostgreSQL, then the quota warnings and ingest pauses."""
    written = usage_persist()
    quotas_check()
    return written


@untrace_task(queue=Queue.MAINTENANCE)
def reconcile_usage() -> int:
    """Raise usage counters that missed increments to the span table's exact count."""
    return len(usage_reconcile())


@untrace_task(queue=Queue.MAINTENANCE)
def report_overage() -> int:
    """Traces above paid plans' included volume -> Stripe meter events."""
    return overage_report().reported
