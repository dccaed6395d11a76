"""Delivery state read from PostgreSQL and Redis when /metrics is scraped."""

from __future__ import annotations

from django.db import DatabaseError
from django.db.models import Count, Min, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from apps.delivery.backpressure import backlog_by_project
from apps.delivery.breaker import circuit_state
from apps.delivery.models import Delivery, DeliveryStatus

_STATES = {"closed": 0, "half-open": 1, "open": 2}


class DeliveryStateCollector:
    def collect(self):
        depth = GaugeMetricFamily(
            "untrace_delivery_queue_depth",
            "Spans waiting to be delivered, by destination.",
            labels=["destination"],
        )
        lag = GaugeMetricFamily(
            "untrace_delivery_lag_seconds",
            "Age of the oldest delivery still waiting, by destination.",
            labels=["destination"],
        )
        dead = GaugeMetricFamily(
            "untrace_delivery_dead_letters",
            "Dead-lettered deliveries, by destination.",
            labels=["destination"],
        )
        circuit = GaugeMetricFamily(
            "untrace_delivery_circuit_state",
            "Circuit breaker per destination: 0 closed, 1 half-open, 2 open.",
            labels=["destination"],
        )
        backlog = GaugeMetricFamily(
            "untrace_project_backlog_spans",
            "Spans per project stored but not routed yet, or waiting for delivery (ingest answers 429 "
            "above UNTRACE_PROJECT_BACKLOG_LIMIT).",
            labels=["project"],
        )
        now = timezone.now()
        try:
            for project_id, spans in backlog_by_project().items():
                backlog.add_metric([project_id], spans)
            pending = (
                Delivery.objects.filter(status=DeliveryStatus.PENDING)
                .values("destination_id")
                .annotate(spans=Sum("span_count"), oldest=Min("created_at"))
            )
            for row in pending:
                label = str(row["destination_id"])
                depth.add_metric([label], row["spans"])
                lag.add_metric([label], (now - row["oldest"]).total_seconds())
                circuit.add_metric([label], _STATES.get(circuit_state(label), 0))
            for row in (
                Delivery.objects.filter(status=DeliveryStatus.DEAD)
                .values("destination_id")
                .annotate(n=Count("id"))
            ):
                dead.add_metric([str(row["destination_id"])], row["n"])
        except DatabaseError:
            return
        yield from (depth, lag, dead, circuit, backlog)
