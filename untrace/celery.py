"""The Celery application. All Celery configuration and the beat schedule live here."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_shutdown
from django.conf import settings
from kombu import Exchange
from kombu import Queue as KombuQueue

from workers.queues import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "untrace.settings")

app = Celery("untrace")

app.conf.update(
    broker_url=settings.CELERY_BROKER_URL,
    broker_transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    broker_connection_retry_on_startup=True,
    # At-least-once: a task is acknowledged after it ran, and requeued when
    # the worker process dies under it.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # Below the visibility timeout, so a running task is never handed to a second worker.
    task_time_limit=settings.UNTRACE_TASK_TIME_LIMIT,
    task_soft_time_limit=settings.UNTRACE_TASK_TIME_LIMIT - 30,
    # On shutdown, running tasks get this long to finish before being requeued.
    worker_soft_shutdown_timeout=10.0,
    worker_enable_soft_shutdown_on_idle=True,
    # Fire-and-forget: outcomes are recorded in PostgreSQL, not a result backend.
    task_ignore_result=True,
    result_backend=None,
    task_serializer="json",
    accept_content=["json"],
    task_always_eager=settings.CELERY_TASK_ALWAYS_EAGER,
    task_default_queue=Queue.MAINTENANCE.value,
    task_queues=[KombuQueue(q.value, Exchange(q.value), routing_key=q.value) for q in Queue],
    task_create_missing_queues=False,
    worker_hijack_root_logger=False,
    timezone="UTC",
    beat_schedule={
        "requeue-unrouted-batches": {
            "task": "workers.tasks.maintenance.requeue_unrouted_batches",
            "schedule": settings.UNTRACE_RECONCILE_INTERVAL_SECONDS,
            "options": {
                "queue": Queue.MAINTENANCE.value,
                "expires": settings.UNTRACE_RECONCILE_INTERVAL_SECONDS,
            },
        },
        "wake-due-deliveries": {
            "task": "workers.tasks.delivery.wake_due_deliveries",
            "schedule": settings.UNTRACE_DELIVERY_SWEEP_SECONDS,
            "options": {"queue": Queue.MAINTENANCE.value, "expires": settings.UNTRACE_DELIVERY_SWEEP_SECONDS},
        },
        "delete-old-webhook-messages": {
            "task": "workers.tasks.maintenance.delete_old_webhook_messages",
            "schedule": 3600.0,
            "options": {"queue": Queue.MAINTENANCE.value, "expires": 3000},
        },
        "delete-expired-data": {
            "task": "workers.tasks.maintenance.delete_expired_data",
            "schedule": 600.0,
            "options": {"queue": Queue.MAINTENANCE.value, "expires": 590},
        },
        "persist-usage": {
            "task": "workers.tasks.billing.persist_usage",
            "schedule": settings.UNTRACE_USAGE_FLUSH_SECONDS,
            "options": {"queue": Queue.MAINTENANCE.value, "expires": settings.UNTRACE_USAGE_FLUSH_SECONDS},
        },
        "reconcile-usage": {
            "task": "workers.tasks.billing.reconcile_usage",
            "schedule": 3600.0,
            "options": {"queue": Queue.MAINTENANCE.value, "expires": 3000},
        },
        "report-overage": {
            "task": "workers.tasks.billing.report_overage",
            "schedule": 3600.0,
            "options": {"queue": Queue.MAINTENANCE.value, "expires": 3000},
        },
        "evaluate-budgets": {
            "task": "workers.tasks.budgets.evaluate_budgets",
            "schedule": settings.UNTRACE_BUDGET_CHECK_SECONDS,
            "options": {"queue": Queue.MAINTENANCE.value, "expires": settings.UNTRACE_BUDGET_CHECK_SECONDS},
        },
        "delete-expired-invitations": {
            "task": "workers.tasks.maintenance.delete_expired_invitations",
            "schedule": 3600.0,
            "options": {"queue": Queue.MAINTENANCE.value, "expires": 3000},
        },
    },
)
# Task modules, listed explicitly (no import magic).
app.conf.imports = [
    "workers.tasks.maintenance",
    "workers.tasks.routing",
    "workers.tasks.delivery",
    "workers.tasks.billing",
    "workers.tasks.privacy",
    "workers.tasks.budgets",
]


@worker_process_shutdown.connect
def _mark_metrics_process_dead(pid: int | None = None, **_: object) -> None:
    """Let prometheus-client drop the gauges of a prefork child that exited."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
