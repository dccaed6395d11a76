"""Prometheus metrics, correct across several web processes and Celery workers.

When PROMETHEUS_MULTIPROC_DIR is set (always under `make run` and in
docker-compose), every process writes its samples to files in that folder and
/metrics aggregates them; the folder must be emptied before the processes start.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter(
    "untrace_http_requests_total",
    "HTTP requests answered, by view name and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "untrace_http_request_duration_seconds",
    "Time to answer an HTTP request, by view name.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
API_KEY_AUTH = Counter(
    "untrace_api_key_auth_total",
    "API key authentication attempts, by result.",
    ["result"],
)
ENQUEUE_FAILURES = Counter(
    "untrace_enqueue_failures_total",
    "Tasks the broker did not take (the reconciler enqueues them again), by task.",
    ["task"],
)
SPANS_INGESTED = Counter(
    "untrace_spans_ingested_total",
    "Spans stored, by source.",
    ["source"],
)
SPANS_REJECTED = Counter(
    "untrace_spans_rejected_total",
    "Spans refused at ingest, by source.",
    ["source"],
)
SPANS_SUPPRESSED = Counter(
    "untrace_spans_suppressed_total",
    "Spans of an erased user or session dropped at ingest (accepted, never stored), by source.",
    ["source"],
)
ROUTING_DECISIONS = Counter(
    "untrace_routing_decisions_total",
    "Span-to-destination routing decisions: kept, sampled_out, disabled (destination off), "
    "unrouted (span matched nothing with a destination), backfilled (earlier span of a trace kept late).",
    ["outcome"],
)
INGEST_THROTTLED = Counter(
    "untrace_ingest_throttled_total",
    "Ingest requests answered 429 because the project's backlog was over its limit.",
)
RATE_LIMITED = Counter(
    "untrace_rate_limited_total",
    "Requests answered 429 by a rate limit, by limit (key, webhook_ip, stripe_webhook_ip, "
    "invitation_ip, auth_failures_ip).",
    ["limit"],
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "untrace_rate_limit_fail_open_total",
    "Requests allowed without a rate-limit check because Redis could not be reached, by limit.",
    ["limit"],
)
TASKS = Counter(
    "untrace_celery_tasks_total",
    "Celery task runs, by task and outcome.",
    ["task", "outcome"],
)
TASK_LATENCY = Histogram(
    "untrace_celery_task_duration_seconds",
    "Celery task run time, by task.",
    ["task"],
)


PROXY_REQUESTS = Counter(
    "untrace_proxy_requests_total",
    "Proxied LLM calls, by provider and status returned to the client.",
    ["provider", "status"],
)
PROXY_UPSTREAM_RETRIES = Counter(
    "untrace_proxy_upstream_retries_total",
    "Upstream attempts the proxy retried, by provider and reason.",
    ["provider", "reason"],
)
PROXY_CIRCUIT = Counter(
    "untrace_proxy_circuit_transitions_total",
    "Proxy upstream circuit breaker transitions (opened, closed).",
    ["transition"],
)
PROXY_FALLBACKS = Counter(
    "untrace_proxy_fallbacks_total",
    "Proxy calls that went to a fallback upstream, by provider.",
    ["provider"],
)
PROXY_TRACES = Counter(
    "untrace_proxy_traces_total",
    "Proxy traces by outcome: stored, spilled (to the local file), replayed (from it), dropped.",
    ["outcome"],
)


DELIVERIES = Counter(
    "untrace_delivery_spans_total",
    "Spans by destination and outcome: delivered, dead (dead-lettered), rerouted (to the fallback), "
    "span_deleted (removed from the store before it could be sent).",
    ["destination", "outcome"],
)
DELIVERY_RETRIES = Counter(
    "untrace_delivery_retries_total",
    "Delivery attempts that failed and were scheduled again, by destination.",
    ["destination"],
)
DELIVERY_LAG = Histogram(
    "untrace_delivery_latency_seconds",
    "Time from routing to delivered, by destination.",
    ["destination"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)

# Collectors that read current state (queue depth, lag, circuit state) when
# /metrics is scraped; apps add theirs in AppConfig.ready().
STATE_COLLECTORS: list[object] = []


def render_metrics() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    if STATE_COLLECTORS:
        state = CollectorRegistry()
        for collector in STATE_COLLECTORS:
            state.register(collector)
        body += generate_latest(state)
    return body, CONTENT_TYPE_LATEST
