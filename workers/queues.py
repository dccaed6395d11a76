"""The Celery queues. Every task names its queue from this Enum."""

from enum import StrEnum


class Queue(StrEnum):
    INGEST = "ingest"
    ROUTE = "route"
    DELIVER = "deliver"
    MAINTENANCE = "maintenance"
