"""Zero loss under faults, over real processes: uvicorn, a Celery worker and beat,
PostgreSQL, Redis, and a local webhook sink with fault modes.

Every test ingests spans in batches while something goes wrong, then waits until
the sink holds every accepted span id. Duplicates are allowed (at-least-once)
and reported; a missing id fails the test. Bounded: a few hundred spans, at
most a minute of waiting each.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import ExitStack

import httpx
import orjson
import pytest
import redis

from apps.routing.services import Actor, config_save
from tests.factories import ApiKeyFactory, DestinationFactory
from tests.fakes.sink import Sink, running_sink
from tests.live import celery_beat, celery_worker, stack_env, wait_for, web_server

pytestmark = pytest.mark.django_db(transaction=True)

FAULT_REDIS = "redis://127.0.0.1:6379/12"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BATCHES = 12
SPANS_PER_BATCH = 25


@pytest.fixture
def fault_redis():
    client = redis.Redis.from_url(FAULT_REDIS)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _env() -> dict[str, str]:
    env = stack_env(redis_url=FAULT_REDIS)
    env.update(
        UNTRACE_ALLOW_PRIVATE_DESTINATIONS="true",
        UNTRACE_DELIVERY_SWEEP_SECONDS="1",
        UNTRACE_RECONCILE_INTERVAL_SECONDS="1",
        UNTRACE_RECONCILE_AFTER_SECONDS="2",
        UNTRACE_DELIVERY_LINGER_SECONDS="0.05",
        UNTRACE_DELIVERY_BASE_BACKOFF_SECONDS="0.05",
        UNTRACE_DELIVERY_MAX_BACKOFF_SECONDS="1",
        UNTRACE_DELIVERY_TIMEOUT="1",
        UNTRACE_CIRCUIT_FAILURES="5",
        UNTRACE_CIRCUIT_RESET_SECONDS="1",
    )
    return env


class Stack:
    def __init__(self, sink: Sink, tmp_path) -> None:
        self.sink = sink
        self.key = ApiKeyFactory()
        destination = DestinationFactory(
            project=self.key.project, config={"url": sink.url, "secret": SECRET}, name="sink"
        )
        document = {
            "rules": [{"name": "all", "conditions": {}, "actions": {"destinations": [str(destination.pk)]}}]
        }
        config_save(project_id=self.key.project_id, document=document, actor=Actor(), summary="test")
        self.env = _env()
        self.tmp_path = tmp_path
        self.accepted: set[str] = set()
        self.resources = ExitStack()
        self.base = self.resources.enter_context(web_server(self.env))
        self.worker = self.resources.enter_context(celery_worker(self.env))
        self.resources.enter_context(celery_beat(self.env, tmp_path / "beat-schedule"))

    def send(self, prefix: str, batches: int = BATCHES, pause: float = 0.05) -> None:
        with httpx.Client(timeout=10) as client:
            for b in range(batches):
                spans = [
                    {"id": f"{prefix}-{b}-{i}", "trace_id": f"{prefix}-{b}", "model": "gpt-4o-mini"}
                    for i in range(SPANS_PER_BATCH)
                ]
                response = client.post(
                    f"{self.base}/v1/traces/batch",
                    content=orjson.dumps({"traces": spans}),
                    headers={"content-type": "application/json", "x-untrace-key": self.key.secret},
                )
                assert response.status_code == 202, response.text
                self.accepted.update(response.json()["accepted"])
                time.sleep(pause)

    def send_in_background(self, prefix: str) -> threading.Thread:
        thread = threading.Thread(target=self.send, args=(prefix,))
        thread.start()
        return thread

    def assert_all_delivered(self, timeout: float = 60) -> None:
        assert self.accepted
        done = wait_for(lambda: self.accepted <= self.sink.delivered, timeout=timeout, interval=0.5)
        missing = self.accepted - self.sink.delivered
        assert done and not missing, f"{len(missing)} of {len(self.accepted)} spans never delivered"
        assert self.sink.delivered == self.accepted
        print(f"delivered {len(self.accepted)} spans, {self.sink.duplicates()} duplicates")

    def close(self) -> None:
        self.resources.close()


@pytest.fixture
def stack(fault_redis, tmp_path):
    with running_sink(SECRET) as sink:
        running = Stack(sink, tmp_path)
        try:
            yield running
        finally:
            running.close()


def test_baseline_everything_accepted_is_delivered(stack):
    stack.send("base")
    stack.assert_all_delivered()


def test_worker_killed_with_sigkill_mid_load(stack):
    stack.sink.mode = "slow"
    stack.sink.delay = 0.3  # so the kill lands while requests are in flight
    sender = stack.send_in_background("kill")
    assert wait_for(lambda: len(stack.sink.requests) >= 2, timeout=30)
    os.kill(stack.worker.pid, signal.SIGKILL)
    stack.worker.wait(timeout=10)
    sender.join()
    stack.sink.mode = "ok"
    with celery_worker(stack.env):
        stack.assert_all_delivered()


def test_redis_flushed_mid_load(stack, fault_redis):
    stack.sink.mode = "slow"
    stack.sink.delay = 0.2
    sender = stack.send_in_background("flush")
    assert wait_for(lambda: len(stack.sink.requests) >= 1, timeout=30)
    fault_redis.flushall()
    sender.join()
    fault_redis.flushall()
    stack.sink.mode = "ok"
    stack.assert_all_delivered()


@pytest.mark.parametrize("mode", ["error", "throttle", "timeout", "flaky"])
def test_a_failing_destination_gets_everything_once_it_recovers(stack, mode):
    stack.sink.mode = mode
    stack.sink.retry_after = 1
    stack.sink.delay = 1.5
    stack.send(mode, batches=6)
    if mode != "flaky":
        assert wait_for(lambda: len(stack.sink.requests) >= 2, timeout=20)
        assert not stack.sink.delivered
        stack.sink.mode = "ok"
    stack.assert_all_delivered()


def test_a_slow_destination(stack):
    stack.sink.mode = "slow"
    stack.sink.delay = 0.5
    stack.send("slow", batches=6, pause=0)
    stack.assert_all_delivered()
