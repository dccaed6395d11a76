"""End to end over real HTTP, PostgreSQL and Redis: ingest -> store -> route task.

Includes the failure modes of the contract: broker down (still 202, the
reconciler catches up) and PostgreSQL down (503 with Retry-After, never 202).
"""

import subprocess
import sys
from datetime import timedelta

import httpx
import orjson
import pytest
import redis
from django.utils import timezone

from apps.keys.key_format import new_key
from apps.traces.models import IngestBatch, Span
from tests.factories import ApiKeyFactory
from tests.live import ROOT, celery_worker, stack_env, wait_for, web_server

pytestmark = pytest.mark.django_db(transaction=True)

PIPELINE_REDIS = "redis://127.0.0.1:6379/13"


@pytest.fixture
def pipeline_redis():
    client = redis.Redis.from_url(PIPELINE_REDIS)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _span(i: int) -> dict:
    return {
        "id": f"e2e-{i}",
        "model": "gpt-4o-mini",
        "start_time": 1763900000000,
        "end_time": 1763900000800,
        "request": {"messages": [{"role": "user", "content": "ping"}]},
        "response": {"content": "pong"},
    }


def test_ingested_batch_is_routed_by_a_real_worker(pipeline_redis):
    key = ApiKeyFactory()
    env = stack_env(redis_url=PIPELINE_REDIS)
    with web_server(env) as base, celery_worker(env):
        response = httpx.post(
            f"{base}/v1/traces/batch",
            content=orjson.dumps({"traces": [_span(i) for i in range(3)]}),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key.secret}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": ["e2e-0", "e2e-1", "e2e-2"], "errors": []}
        assert Span.objects.for_project(key.project_id).count() == 3  # durable before the 202
        batch = IngestBatch.objects.get(project_id=key.project_id)
        assert batch.span_count == 3
        assert wait_for(lambda: IngestBatch.objects.get(pk=batch.pk).routed_at is not None)

        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'untrace_spans_ingested_total{source="batch"} 3.0' in metrics
        assert 'untrace_http_requests_total{method="POST",route="ingest-batch",status="202"} 1.0' in metrics


def test_broker_down_still_accepts_and_the_reconciler_requeues(pipeline_redis):
    key = ApiKeyFactory()
    env = stack_env(redis_url="redis://127.0.0.1:1/0")
    with web_server(env) as base:
        response = httpx.post(
            f"{base}/v1/traces",
            content=orjson.dumps(_span(1)),
            headers={"Content-Type": "application/json", "X-Untrace-Key": key.secret},
            timeout=10,
        )
        assert response.status_code == 202
        failed = 'untrace_enqueue_failures_total{task="route"} 1.0'
        assert wait_for(lambda: failed in httpx.get(f"{base}/metrics").text, timeout=10)
    batch = IngestBatch.objects.get(project_id=key.project_id)
    assert batch.routed_at is None
    assert Span.objects.for_project(key.project_id).filter(span_id="e2e-1").exists()

    # The broker is back: beat's reconciler task requeues the batch and a worker routes it.
    IngestBatch.objects.filter(pk=batch.pk).update(created_at=timezone.now() - timedelta(minutes=3))
    good = stack_env(redis_url=PIPELINE_REDIS)
    with celery_worker(good):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "untrace",
                "call",
                "workers.tasks.maintenance.requeue_unrouted_batches",
                "--queue",
                "maintenance",
            ],
            cwd=ROOT,
            env=good,
            check=True,
            capture_output=True,
            timeout=60,
        )
        assert wait_for(lambda: IngestBatch.objects.get(pk=batch.pk).routed_at is not None)


def test_database_down_is_503_with_retry_after(pipeline_redis):
    env = stack_env(redis_url=PIPELINE_REDIS, database_url="postgres://postgres@127.0.0.1:1/nowhere")
    with web_server(env) as base:
        response = httpx.post(
            f"{base}/v1/traces",
            content=orjson.dumps(_span(2)),
            # well formed (its checksum holds), so checking it needs the database
            headers={"Content-Type": "application/json", "X-Untrace-Key": new_key("a" * 12)},
            timeout=15,
        )
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json()["error"]["code"] == "store_unavailable"
        ready = httpx.get(f"{base}/ready", timeout=15)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "down"
